"""A slow package index, for real: a build through an index whose project pages answer only
after longer than pip's and uv's default read timeouts succeeds with pyrlab's default
patience, and a build with too little patience fails naming the index and the setting."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from labtools import EngineCli, Lab
from slowindex import DEFAULT_TIMEOUTS, SlowIndex, slow_index

pytestmark = pytest.mark.integration

ENGINE = "docker"


@pytest.fixture(scope="module")
def index() -> Iterator[SlowIndex]:
    with slow_index() as served:
        yield served


@pytest.fixture(scope="module")
def engine(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine(ENGINE)


def test_a_build_through_a_slow_index_succeeds(make_module_lab: Callable[..., Lab],
                                               engine: EngineCli, index: SlowIndex) -> None:
    lab = make_module_lab("slow-index", ENGINE, PROXY=f"pip_index = {json.dumps(index.url)}")
    done = lab.pyrlab("build", "--json")
    assert done.returncode == 0, done.stderr
    # uv (six) waited past its own default; so did pip when this build had to fetch uv
    # itself (once per machine: uv then stays in the build's uv cache).
    assert "/simple/six/" in index.pages("uv"), index.served
    pylab_log = Path(str(json.loads(done.stdout)["images"][1]["log"])).read_text()
    if "pyrlab: fetching uv" in pylab_log:
        assert "/simple/uv/" in index.pages("pip"), index.served
    for served in index.served:
        assert served.delay > DEFAULT_TIMEOUTS.get(served.client, 0.0)
    engine("run", "--rm", lab.ref("pylab"), "python", "-c", "import six")


def test_too_little_patience_names_the_index_and_the_setting(
        make_module_lab: Callable[..., Lab], engine: EngineCli, index: SlowIndex) -> None:
    user_index = index.url.replace("http://", "http://builder:hunter2@")
    lab = make_module_lab("slow-index", ENGINE, name="impatient", PROXY="\n".join([
        f"pip_index = {json.dumps(user_index)}", "timeout = 3", "retries = 1"]))
    done = lab.pyrlab("build", "pylab")
    assert done.returncode != 0
    host = index.url.removeprefix("http://").split("/")[0]
    # pip names the configured index (masked here); uv prints the URL without credentials.
    assert re.search(rf"http://(\*\*\*@)?{re.escape(host)}/simple/ did not answer within 3 s "
                     r"\(1 retries\)", done.stderr), done.stderr
    assert "raise proxy.timeout in pyrlab.toml" in done.stderr
    assert "hunter2" not in done.stderr
    assert engine.refs(lab.prefix + "pylab") == [], "a failed build must not tag pylab"
