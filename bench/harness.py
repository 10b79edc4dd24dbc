"""Run a scenario's measurements alternated, and turn them into medians and same-run ratios.

The machine is shared and noisy (writes into fresh page cache vary 3-10x run to run), so no
absolute time means much on its own. Every scenario therefore measures chute and its baselines
in the same rounds - A, B, C, then C, B, A - and each target is the median of the per-round
ratios A_i / B_i, which cancels most of the drift that hits both sides of one round.
"""

from __future__ import annotations

import statistics
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Callable

MiB = 1 << 20


@dataclass
class Sample:
    """One measurement: the primary value (in the case's unit) plus named extras."""

    value: float
    extra: dict[str, float] = field(default_factory=dict)

    def get(self, metric: str) -> float:
        return self.value if metric == "value" else self.extra[metric]


@dataclass
class Case:
    """One thing measured each round: chute's way, the peer's way, or a physical limit."""

    key: str
    label: str
    run: Callable[[], Sample]
    unit: str = "MiB/s"
    side: str = "chute"  # chute | peer | limit
    skip: str | None = None  # reason this case is not run (e.g. "peer unavailable: ...")


@dataclass
class Target:
    """`metric(a) / metric(b)` per round, compared with `goal`; b=None: metric(a) itself.

    `metric_b` names b's metric when it differs from a's (a ceiling derived from a's extras,
    compared with b's value)."""

    label: str
    a: str
    b: str | None
    op: str = ">="  # ">=" | "<=" | "==" ; None goal: informational ratio
    goal: float | None = None
    metric: str = "value"
    metric_b: str | None = None


@dataclass
class Stats:
    median: float
    min: float
    max: float
    values: list[float]

    @classmethod
    def of(cls, values: list[float]) -> "Stats":
        return cls(statistics.median(values), min(values), max(values), values)


@dataclass
class CaseResult:
    key: str
    label: str
    unit: str
    side: str
    stats: Stats | None = None
    extra: dict[str, Stats] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None


@dataclass
class TargetResult:
    label: str
    a: str
    b: str | None
    op: str
    goal: float | None
    metric: str
    metric_b: str | None = None
    ratio: Stats | None = None
    met: bool | None = None
    skipped: str | None = None


@dataclass
class ScenarioResult:
    name: str
    title: str
    size: int
    runs: int
    cases: list[CaseResult] = field(default_factory=list)
    targets: list[TargetResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None
    seconds: float = 0.0
    finished: str = ""

    def errors(self) -> list[str]:
        found = [f"{self.name}: {self.error}"] if self.error else []
        found += [f"{self.name}/{c.key}: {c.error}" for c in self.cases if c.error]
        return found

    def to_json(self) -> dict:
        return asdict(self)


def _check(op: str, ratio: float, goal: float) -> bool:
    if op == ">=":
        return ratio >= goal
    if op == "<=":
        return ratio <= goal
    return abs(ratio - goal) < 1e-9


Rounds = dict[str, list["Sample | None"]]


def run_alternated(cases: list[Case], runs: int,
                   between: Callable[[], None] | None = None) -> tuple[Rounds, dict[str, str]]:
    """Run every case `runs` times, order reversed every other round; a failing case stops.

    Returns key -> per-round samples (None where the case was skipped or had failed), so that
    ratios pair samples of the same round only. A failure is kept as the case's error text.
    """
    samples: dict[str, list[Sample | None]] = {case.key: [] for case in cases}
    errors: dict[str, str] = {}
    for round_no in range(runs):
        order = cases if round_no % 2 == 0 else list(reversed(cases))
        for case in order:
            sample = None
            if case.skip is None and case.key not in errors:
                try:
                    sample = case.run()
                except Exception as exc:  # noqa: BLE001 - reported in the table, not hidden
                    errors[case.key] = f"{type(exc).__name__}: {exc}"
                    traceback.print_exc()
            samples[case.key].append(sample)
            if between is not None:
                between()
    return samples, errors


def summarize(result: ScenarioResult, cases: list[Case], targets: list[Target],
              samples: Rounds, errors: dict[str, str]) -> ScenarioResult:
    by_key = {}
    for case in cases:
        got = [s for s in samples.get(case.key, []) if s is not None]
        res = CaseResult(case.key, case.label, case.unit, case.side, skipped=case.skip,
                         error=errors.get(case.key))
        if got:
            res.stats = Stats.of([s.value for s in got])
            for name in got[0].extra:
                res.extra[name] = Stats.of([s.extra[name] for s in got if name in s.extra])
        by_key[case.key] = res
        result.cases.append(res)
    for target in targets:
        result.targets.append(_target(target, by_key, samples))
    return result


def _target(target: Target, by_key: dict[str, CaseResult], samples: Rounds) -> TargetResult:
    res = TargetResult(target.label, target.a, target.b, target.op, target.goal, target.metric,
                       target.metric_b)
    for key in (target.a, target.b):
        if key is None:
            continue
        case = by_key[key]
        if case.skipped or case.error:
            res.skipped = case.skipped or f"{case.label} failed"
            return res
    ratios = []
    a_list = samples[target.a]
    b_list = samples[target.b] if target.b else [None] * len(a_list)
    for a_s, b_s in zip(a_list, b_list, strict=True):
        if a_s is None or (target.b and b_s is None):
            continue
        a_v = a_s.get(target.metric)
        if b_s is None:
            ratios.append(a_v)
            continue
        b_v = b_s.get(target.metric_b or target.metric)
        if b_v:  # a tiny smoke-test file can cost a baseline no measurable CPU
            ratios.append(a_v / b_v)
    if not ratios:
        res.skipped = "no paired runs with a non-zero baseline"
        return res
    res.ratio = Stats.of(ratios)
    if target.goal is not None:
        res.met = _check(target.op, res.ratio.median, target.goal)
    return res


def measure(result: ScenarioResult, cases: list[Case], targets: list[Target],
            between: Callable[[], None] | None = None) -> ScenarioResult:
    """The usual path of a scenario: alternate, then summarize into `result`."""
    started = time.monotonic()
    samples, errors = run_alternated(cases, result.runs, between)
    summarize(result, cases, targets, samples, errors)
    result.seconds += time.monotonic() - started
    return result


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def markdown(results: list[ScenarioResult]) -> str:
    """Two Markdown tables: the measurements, then the targets as same-run ratios."""
    lines = ["| scenario | measured | side | median | min-max | runs |",
             "|---|---|---|---:|---:|---:|"]
    for res in results:
        if res.skipped or (res.error and not res.cases):
            lines.append(f"| {res.name} | {res.skipped or 'ERROR: ' + str(res.error)} | | | | |")
            continue
        for case in res.cases:
            if case.stats is None:
                why = case.skipped or ("ERROR: " + case.error if case.error else "no data")
                lines.append(f"| {res.name} | {case.label} | {case.side} | {why} | | 0 |")
                continue
            st = case.stats
            extras = "".join(f"; {name} {fmt(s.median)}" for name, s in case.extra.items())
            lines.append(f"| {res.name} | {case.label}{extras} | {case.side} | "
                         f"{fmt(st.median)} {case.unit} | {fmt(st.min)}-{fmt(st.max)} | "
                         f"{len(st.values)} |")
    lines += ["", "| scenario | ratio (same run) | median | min-max | target | met |",
              "|---|---|---:|---:|---:|:---:|"]
    for res in results:
        for tgt in res.targets:
            goal = f"{tgt.op} {fmt(tgt.goal)}" if tgt.goal is not None else "(info)"
            if tgt.ratio is None:
                lines.append(f"| {res.name} | {tgt.label} | {tgt.skipped} | | {goal} | skipped |")
                continue
            met = "" if tgt.met is None else ("yes" if tgt.met else "**NO**")
            lines.append(f"| {res.name} | {tgt.label} | {fmt(tgt.ratio.median)} | "
                         f"{fmt(tgt.ratio.min)}-{fmt(tgt.ratio.max)} | {goal} | {met} |")
    notes = [f"- {res.name}: {note}" for res in results for note in res.notes]
    errors = [f"- {err}" for res in results for err in res.errors()]
    if notes:
        lines += ["", "Notes:", *notes]
    if errors:
        lines += ["", "Errors:", *errors]
    return "\n".join(lines)
