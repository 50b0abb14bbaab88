"""Held-back listed packages: the rule, upload times, uv's explanation of what holds one
back, and the probes' decisions (src/pyrlab/container/heldback.py, run in images; the
build's reading of its lines: ecosystems/python.py `held_back_in`)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from pyrlab.container import heldback
from pyrlab.ecosystems.python import held_back_in

UTC = datetime.UTC


def when(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def test_a_major_version_ahead_is_held_back_whatever_the_dates() -> None:
    assert heldback.held_reason("1.27.0", "3.7.0", {}) == "major version 3 is out"
    assert heldback.held_reason("3.7.0", "3.7.0", {}) is None
    assert heldback.held_reason("3.7.0", "3.6.0", {}) is None  # never "held" downwards


def test_more_than_a_year_between_uploads_is_held_back() -> None:
    uploaded = {"1.1": when("2023-01-01T00:00:00Z"), "1.2": when("2025-06-01T00:00:00Z"),
                "1.3": when("2023-06-01T00:00:00Z")}
    why = heldback.held_reason("1.1", "1.2", uploaded)
    assert why == "1.2 was uploaded 29 months after 1.1 (2025-06-01 against 2023-01-01)"
    assert heldback.held_reason("1.1", "1.3", uploaded) is None  # 5 months
    # Without upload times (an index without PEP 700) only the major rule applies.
    assert heldback.held_reason("1.1", "1.2", {}) is None


def test_upload_times_come_from_the_pep_691_page_earliest_file_per_version() -> None:
    page = {"files": [
        {"filename": "Foo_Bar-1.0-py3-none-any.whl", "upload-time": "2024-03-02T10:00:00Z"},
        {"filename": "foo_bar-1.0.tar.gz", "upload-time": "2024-03-01T09:00:00.123456Z"},
        {"filename": "foo-bar-2.0.0.zip", "upload-time": "2025-01-01T00:00:00Z"},
        {"filename": "foo_bar-3.0-py3-none-any.whl"},  # no upload-time: not known
        {"filename": "other-9.0.tar.gz", "upload-time": "2025-01-01T00:00:00Z"},
    ]}
    times = heldback.upload_times(page, "Foo.Bar")
    assert sorted(times) == ["1.0", "2.0.0"]
    assert times["1.0"] == datetime.datetime(2024, 3, 1, 9, 0, 0, 123456, tzinfo=UTC)


# uv 0.13.9's words, as a probe (`a>=2.0` added to the lists) gets them.
UV_ONE_STEP = """\
  × No solution found when resolving dependencies:
  ╰─▶ Because all versions of b depend on a<2 and you require a>=2.0, we can conclude that
      your requirements and all versions of b are incompatible.
      And because you require b, we can conclude that your requirements are unsatisfiable.
"""
UV_PLAIN = """\
error: No solution found when resolving dependencies
  cause: Because dd<=1.0 depends on cc<1.2 and only the following versions of dd are available:
             dd<=1.0
             dd==1.1
         we can conclude that dd<1.1 depends on cc<1.2.
         And because you require cc>=1.2 and dd<1.1, we can conclude that your requirements are unsatisfiable.
"""
UV_OTHER = """\
error: No solution found when resolving dependencies
  cause: Because the current Python version (3.11.2) does not satisfy Python>=3.12 and mlflow==3.7.0 depends on Python>=3.12, we can conclude that mlflow==3.7.0 cannot be used.
"""


def test_the_holding_requirement_is_read_from_uv_s_explanation() -> None:
    assert heldback.holder(UV_ONE_STEP, "a") == "all versions of b depend on a<2"
    assert heldback.holder(UV_PLAIN, "CC") == "dd<=1.0 depends on cc<1.2; dd<1.1 depends on cc<1.2"
    # Nothing depends on it by name: uv's first reason, not an empty answer.
    assert heldback.holder(UV_OTHER, "mlflow").startswith(
        "Because the current Python version (3.11.2) does not satisfy Python>=3.12")


def test_listed_names_and_their_own_specifiers() -> None:
    lines = ["Dill", "dill[graph]>=0.3 # x", "-r other.txt", "pkg @ https://h/p.whl",
             "git+https://h/r#egg=r", "Ruamel.YAML<1 ; python_version > '3'", ""]
    assert heldback.listed_names(lines) == {"dill": "", "ruamel-yaml": "<1"}
    assert heldback.allows("", "2.0") and heldback.allows(">=1,<3", "2.0")
    assert not heldback.allows("<2", "2.0") and not heldback.allows("==1.*", "2.0")
    assert not heldback.allows("~=1.4", "2.0") and heldback.allows("~=1.4", "1.9")
    assert heldback.pinned("a==1.0\nB_c==2\n# via x\n") == {"a": "1.0", "b-c": "2"}


class Answers(heldback.Resolver):  # type: ignore[misc]
    """uv's answers as a table (what uv gives for these lists is the integration tests'
    business): the newest releases, and per set of constraints a resolution or an error."""

    def __init__(self, newest: dict[str, str],
                 probes: dict[tuple[str, ...], dict[str, str] | str]) -> None:
        super().__init__("uv", "python", ["requirements.txt"])
        self.table, self.answers, self.asked = newest, probes, []  # type: ignore[var-annotated]

    def newest(self, names: Sequence[str]) -> tuple[dict[str, str], str]:
        return {n: self.table[n] for n in names if n in self.table}, ""

    def compile(self, constraints: Sequence[str] = (), timeout: float | None = None,
                ) -> tuple[dict[str, str] | None, str]:
        assert timeout is not None and timeout > 0  # every probe is bounded
        self.asked.append(tuple(constraints))
        answer = self.answers[tuple(constraints)]
        return (None, answer) if isinstance(answer, str) else (answer, "")


def test_a_probe_that_fails_names_the_holder_one_that_succeeds_raises_the_floor() -> None:
    resolved = {"a": "1.0", "b": "1.0", "c": "1.0", "d": "1.0"}
    answers = Answers({"a": "2.0", "b": "1.0", "c": "2.0", "d": "2.0"}, {
        ("a>=2.0",): UV_ONE_STEP,
        ("c>=2.0",): {"a": "1.0", "b": "1.0", "c": "2.0", "d": "1.0"},
        # With c raised, d's newest lowers b: a resolution, but not a better one.
        ("c>=2.0", "d>=2.0"): {"a": "1.0", "b": "0.9", "c": "2.0", "d": "2.0"},
    })
    result = heldback.check(answers, {"a": "", "b": "", "c": "", "d": "", "e": ""}, resolved,
                            [])
    assert [(r["name"], r["holder"]) for r in result["held"]] == [
        ("a", "all versions of b depend on a<2"),
        ("d", "the resolution with it lowers other listed packages: b 1.0 -> 0.9")]
    assert [(r["name"], r["to"]) for r in result["raised"]] == [("c", "2.0")]
    assert result["floors"] == ["c>=2.0"]


def test_probes_are_capped_and_the_cap_is_said() -> None:
    names = {f"p{i}": "" for i in range(4)}
    answers = Answers(dict.fromkeys(names, "2.0"),
                      {(f"p{i}>=2.0",): UV_ONE_STEP for i in range(4)})
    result = heldback.check(answers, names, dict.fromkeys(names, "1.0"), [], max_probes=2)
    assert len(answers.asked) == 2
    assert [r["holder"] for r in result["held"]][2:] == [
        "not probed (at most 2 probes per resolution)"] * 2
    assert result["notes"] == ["2 held-back packages not probed (at most 2 probes, 120 s in all)"]
    # And a time budget for them all: a probe of a long list may build old sdists.
    spent = heldback.check(Answers(dict.fromkeys(names, "2.0"), {}), names,
                           dict.fromkeys(names, "1.0"), [], probe_seconds=0)
    assert {r["holder"] for r in spent["held"]} == {"not probed (the probes' 0 s are spent)"}


def test_a_package_whose_own_line_excludes_the_newest_is_the_user_s_choice() -> None:
    answers = Answers({"a": "2.0"}, {})
    assert heldback.check(answers, {"a": "<2"}, {"a": "1.0"}, [])["held"] == []


def test_the_build_reads_the_findings_from_any_engine_s_output_line() -> None:
    line = ('#12 41.07 pyrlab-held-back: {"holder": "all versions of b depend on a<2", '
            '"kind": "held", "name": "a", "newest": "2.0", "resolved": "1.0", '
            '"why": "major version 2 is out"}')
    finding = held_back_in(line)
    assert finding is not None
    assert finding.describe() == ("held back: a 1.0, newest 2.0 (major version 2 is out); "
                                  "held by all versions of b depend on a<2")
    assert held_back_in("#12 41.08 pyrlab: a held back") is None
    # Where no requirement was found, the line says why instead of "held by".
    unprobed = held_back_in(line.replace("all versions of b depend on a<2",
                                         "not probed (the probes' 120 s are spent)"))
    assert unprobed is not None
    assert unprobed.describe() == ("held back: a 1.0, newest 2.0 (major version 2 is out); "
                                   "not probed (the probes' 120 s are spent)")
    assert held_back_in("pyrlab-held-back: {broken") is None
