"""A small client for a running lab: Jupyter Server's REST API and the kernel websocket.

Only the standard library and `websocket-client` (the test extra). Any kernel works the
same way, so R labs use it for the `ir` kernel too:

    lab = LabClient("http://127.0.0.1:8888", token)
    lab.wait_ready()                              # /api/status answers (optional)
    with lab.kernel("python3") as kernel:         # POST /api/kernels … DELETE on exit
        out = kernel.execute("print(6*7)")
        assert out.ok and out.stdout == "42\\n"   # also .stderr, .result, .error, .outputs
    status, body = lab.request("GET", "/api/contents", token=False)   # → 403

`terminal(command)` types a command into a new terminal (`/terminals/websocket/<name>`)
and returns what it printed.

`execute` speaks the Jupyter messaging protocol (v5) as JSON text frames over
`/api/kernels/<id>/channels` and gathers everything the kernel sends back for that one
request: stream output, the execute_result / display_data (text/plain), an error with its
traceback. It returns when the kernel is idle again and the execute_reply has arrived.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import websocket  # websocket-client


class LabError(Exception):
    """The lab answered something unexpected (status, payload or timeout)."""


@dataclass
class Execution:
    """What one execute_request produced."""

    status: str = ""  # "ok", "error" or "aborted" (from execute_reply)
    stdout: str = ""
    stderr: str = ""
    result: str = ""  # text/plain of execute_result (the cell's value)
    display: list[str] = field(default_factory=list)  # text/plain of each display_data
    error: dict[str, Any] | None = None  # {"ename", "evalue", "traceback"}
    outputs: list[dict[str, Any]] = field(default_factory=list)  # every iopub message, raw

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.error is None

    def describe(self) -> str:
        """For assertion messages: everything the kernel said."""
        parts = [f"status={self.status!r}"]
        if self.stdout:
            parts.append(f"stdout={self.stdout!r}")
        if self.stderr:
            parts.append(f"stderr={self.stderr!r}")
        if self.result:
            parts.append(f"result={self.result!r}")
        if self.error:
            parts.append(f"error={self.error.get('ename')}: {self.error.get('evalue')}\n"
                         + "\n".join(self.error.get("traceback", [])))
        return ", ".join(parts)


class Kernel:
    """One running kernel, reached through its websocket."""

    def __init__(self, lab: LabClient, kernel_id: str, name: str) -> None:
        self.lab = lab
        self.id = kernel_id
        self.name = name
        self.session = uuid.uuid4().hex
        url = lab.ws_url(f"/api/kernels/{kernel_id}/channels") + f"?session_id={self.session}"
        self.ws = websocket.create_connection(
            url, timeout=lab.timeout, header=[f"Authorization: token {lab.token}"])

    def _message(self, msg_type: str, content: dict[str, Any], channel: str) -> dict[str, Any]:
        return {
            "header": {"msg_id": uuid.uuid4().hex, "username": "pyrlab-test",
                       "session": self.session, "msg_type": msg_type, "version": "5.3",
                       "date": datetime.now(UTC).isoformat()},
            "parent_header": {}, "metadata": {}, "content": content,
            "channel": channel, "buffers": [],
        }

    def execute(self, code: str, timeout: float = 120.0) -> Execution:
        """Run `code`; returns when the kernel reports idle for it. Raises LabError on timeout."""
        request = self._message("execute_request", {
            "code": code, "silent": False, "store_history": False, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True}, "shell")
        msg_id = request["header"]["msg_id"]
        self.ws.send(json.dumps(request))
        out = Execution()
        idle = replied = False
        deadline = time.monotonic() + timeout
        while not (idle and replied):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LabError(f"no answer from the {self.name} kernel within {timeout:g} s "
                               f"(so far: {out.describe()})")
            self.ws.settimeout(remaining)
            try:
                frame = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if isinstance(frame, bytes):  # binary frames belong to other protocols/widgets
                continue
            message = json.loads(frame)
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["header"]["msg_type"]
            content = message.get("content", {})
            if message.get("channel") == "shell" and kind == "execute_reply":
                out.status = content.get("status", "")
                replied = True
                continue
            if message.get("channel") != "iopub":
                continue
            out.outputs.append(message)
            if kind == "stream":
                if content.get("name") == "stderr":
                    out.stderr += content.get("text", "")
                else:
                    out.stdout += content.get("text", "")
            elif kind == "execute_result":
                out.result += content.get("data", {}).get("text/plain", "")
            elif kind == "display_data":
                out.display.append(content.get("data", {}).get("text/plain", ""))
            elif kind == "error":
                out.error = {k: content.get(k) for k in ("ename", "evalue", "traceback")}
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
        return out

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.lab.request("DELETE", f"/api/kernels/{self.id}")


class LabClient:
    """A JupyterLab server at `base_url` (e.g. http://127.0.0.1:8888) with its token."""

    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def ws_url(self, path: str) -> str:
        return "ws" + self.base_url.removeprefix("http") + path

    def request(self, method: str, path: str, body: Any = None, *,
                token: bool = True) -> tuple[int, Any]:
        """(HTTP status, parsed JSON or text); redirects are not followed."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"token {self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers,
                                         method=method)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        text = raw.decode("utf-8", errors="replace")
        try:
            return status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return status, text

    def json(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        status, payload = self.request(method, path, body)
        if status != expect:
            raise LabError(f"{method} {path}: expected {expect}, got {status}: {payload!r}")
        return payload

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, payload = self.request("GET", "/api/status")
                if status == 200:
                    return dict(payload)
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise LabError(f"{self.base_url} did not answer within {timeout:g} s")
            time.sleep(0.25)

    def kernelspecs(self) -> list[str]:
        return sorted(self.json("GET", "/api/kernelspecs")["kernelspecs"])

    def start_kernel(self, name: str = "python3") -> Kernel:
        info = self.json("POST", "/api/kernels", {"name": name}, expect=201)
        return Kernel(self, info["id"], name)

    @contextmanager
    def kernel(self, name: str = "python3") -> Iterator[Kernel]:
        """A kernel for the `with` block, shut down afterwards."""
        kernel = self.start_kernel(name)
        try:
            yield kernel
        finally:
            kernel.close()


    def terminal(self, command: str, timeout: float = 300.0) -> str:
        """Run `command` in a new JupyterLab terminal (the shell the server starts, as a
        user's terminal tab) and return its output; the terminal is closed afterwards.
        Raises LabError when the command does not finish within `timeout`."""
        name = self.json("POST", "/api/terminals")["name"]
        ws = websocket.create_connection(
            self.ws_url(f"/terminals/websocket/{name}"), timeout=self.timeout,
            header=[f"Authorization: token {self.token}"])
        marker = uuid.uuid4().hex
        output = ""
        try:
            # The marker is printed by the shell, not echoed: its two halves are split.
            ws.send(json.dumps(["stdin", f"{command}; echo {marker[:16]}\"\"{marker[16:]}\r"]))
            deadline = time.monotonic() + timeout
            while marker not in output:
                if time.monotonic() > deadline:
                    raise LabError(f"terminal: no end of {command!r} in {timeout:g} s:\n{output}")
                try:
                    frame = json.loads(ws.recv())
                except websocket.WebSocketTimeoutException:
                    continue
                if frame[0] == "stdout":
                    output += frame[1]
        finally:
            ws.close()
            self.request("DELETE", f"/api/terminals/{name}")
        return output[:output.index(marker)]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Let a redirect (to the login page) come back as it is."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
