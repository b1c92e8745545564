"""Benchmark of ``journeys validate`` on a large generated library.

Generates 1,000 journeys of 40 nodes (about 8 MB of YAML) with a motive catalogue and a few
shared sub-journeys, then prints, in one run:

- the floor: merely loading the same files with PyYAML's C loader (``yaml.CSafeLoader``);
- a cold ``journeys validate`` (no cache), as a user runs it, in a fresh process;
- a warm run when nothing changed (the cache answers);
- a run after one sub-journey changed (its callers are checked again).

Targets (issue 2): cold <= 2x the floor, warm <= 0.2x the floor.

Usage: python bench/validate.py [--journeys 1000] [--nodes 40] [--out bench/out/library]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def journey_text(index: int, nodes: int, subs: int) -> str:
    """A realistic journey: identify, ask, act, decide, choose, and ends, in two locales."""
    lines = _header(index, subs)
    steps = max(1, (nodes - 4) // 6)
    for s in range(steps):
        lines += _step(s, f"s{s + 1}_ask" if s + 1 < steps else "done")
    lines += _done(index)
    return "\n".join(lines) + "\n"


def _header(index: int, subs: int) -> list[str]:
    """The journey's keys, and its first node: a shared sub-journey identifies the customer."""
    return [
        "# yaml-language-server: $schema=../schemas/journey.schema.json",
        f"journey: journey-{index:04d}",
        "version: 1",
        f"title: Generated journey {index}",
        f"motives: [bench.m{index:04d}]",
        "channels: [phone, chat, selfcare]",
        "locales: [en, fr]",
        "inputs:",
        '  customer_id: {type: [string, "null"], default: null}',
        "  tier: {type: string, enum: [standard, premium], default: standard}",
        "start: identify",
        "nodes:",
        "  identify:",
        "    kind: journey",
        f"    journey: shared-{index % subs}",
        "    next: s0_ask",
    ]


def _step(s: int, nxt: str) -> list[str]:
    """Step ``s`` in seven nodes: ask for an order, fetch its tracking, route on it, offer a
    refund and make it, say it was delivered, hand off when tracking fails; the ways out of
    the step go to ``nxt``."""
    return [
        f"  s{s}_ask:",
        "    kind: ask",
        f'    say: {{en: "Step {s}: which order is it about, {{{{ customer.name }}}}?", '
        f'fr: "Étape {s} : quelle commande, {{{{ customer.name }}}} ?"}}',
        f"    field: order_{s}",
        '    schema: {type: string, pattern: "^[0-9]{8}$"}',
        f"    next: s{s}_fetch",
        f"  s{s}_fetch:",
        "    kind: action",
        "    action: orders.get_tracking",
        f"    input: {{order_id: =order_{s}}}",
        f"    output: tracking_{s}",
        "    retries: 2",
        f"    on_error: s{s}_sorry",
        f"    next: s{s}_route",
        f"  s{s}_route:",
        "    kind: decide",
        "    branches:",
        f'      - {{if: tracking_{s}.status == "delivered", next: s{s}_say}}',
        f'      - {{if: tracking_{s}.days_late > 5 or tier == "premium", next: s{s}_offer}}',
        f"    else: {nxt}",
        f"  s{s}_offer:",
        "    kind: choose",
        '    say: {en: "What would you prefer?", fr: "Que préférez-vous ?"}',
        f"    field: compensation_{s}",
        "    options:",
        f"      - {{value: refund, label: {{en: A refund, fr: Un remboursement}}, next: s{s}_refund}}",
        f"      - {{value: 'no', label: {{en: Nothing, fr: Rien}}, next: {nxt}}}",
        f"  s{s}_refund:",
        "    kind: action",
        "    action: payments.refund",
        f"    input: {{order_id: =order_{s}, amount: =tracking_{s}.shipping_cost, reason: late delivery}}",
        "    wait: false",
        f"    next: {nxt}",
        f"  s{s}_say:",
        "    kind: say",
        f'    say: {{en: "Your parcel {{{{ tracking_{s}.order_id }}}} was delivered.", '
        f'fr: "Votre colis {{{{ tracking_{s}.order_id }}}} a été livré."}}',
        f"    next: {nxt}",
        f"  s{s}_sorry:",
        "    kind: handoff",
        "    queue: logistics",
        "    reason: tracking unavailable",
    ]


def _done(index: int) -> list[str]:
    """The end: resolved, a survey, and the contact logged after it."""
    return [
        "  done:",
        "    kind: end",
        "    outcome: resolved",
        '    say: {en: "Anything else?", fr: "Autre chose ?"}',
        "    survey: [ces, nps]",
        "    after:",
        f"      - {{action: crm.log_contact, input: {{customer_id: =customer_id, motive: bench.m{index:04d}, outcome: resolved}}}}",
    ]


SHARED = """journey: shared-{n}
version: 1
title: Shared identification {n}
locales: [en, fr]
start: ask_id
nodes:
  ask_id:
    kind: ask
    say: {{en: "Your customer number?", fr: "Votre numéro client ?"}}
    field: customer_id
    schema: {{type: string}}
    next: lookup
  lookup:
    kind: action
    action: crm.get_customer
    input: {{customer_id: =customer_id}}
    output: customer
    on_error: unknown
    next: found
  found: {{kind: end, outcome: resolved}}
  unknown: {{kind: handoff, queue: security}}
"""


def generate(out: Path, journeys: int, nodes: int, subs: int) -> int:
    if out.exists():
        shutil.rmtree(out)
    (out / "generated").mkdir(parents=True)
    (out / "shared").mkdir()
    motives = ["motives:"]
    for i in range(journeys):
        (out / "generated" / f"journey-{i:04d}.yaml").write_text(
            journey_text(i, nodes, subs), encoding="utf-8"
        )
        motives += [
            f"  bench.m{i:04d}:",
            f"    title: {{en: Motive {i}, fr: Motif {i}}}",
            "    category: bench",
            f"    journey: journey-{i:04d}",
            "    keywords: [order, commande]",
        ]
    for n in range(subs):
        (out / "shared" / f"shared-{n}.yaml").write_text(SHARED.format(n=n), encoding="utf-8")
    (out / "motives.yaml").write_text("\n".join(motives) + "\n", encoding="utf-8")
    return sum(p.stat().st_size for p in out.rglob("*.yaml"))


def floor(out: Path) -> float:
    start = time.perf_counter()
    for path in sorted(out.rglob("*.yaml")):
        with path.open(encoding="utf-8") as f:
            yaml.load(f, Loader=yaml.CSafeLoader)
    return time.perf_counter() - start


def run_validate(out: Path, *extra: str) -> tuple[float, str]:
    journeys = Path(sys.executable).with_name("journeys")
    start = time.perf_counter()
    proc = subprocess.run(
        [str(journeys), "validate", str(out), *extra], capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"journeys validate failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""


BAD_INPUTS: dict[str, bytes] = {
    "empty file": b"",
    "binary file": bytes(range(256)) * 64,
    "file over the size limit (5 MB)": b"# padding\n" * 500_000,
    "10,000-level nested document": b"nodes: " + b"[" * 10_000 + b"]" * 10_000 + b"\n",
    "alias bomb (billion laughs)": b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + b"".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n".encode()
        for i in range(9)
    ),
}


def bad_inputs(out: Path) -> None:
    """Each bad input alone in a library: one clear finding, in well under a second."""
    print("bad input (one file, whole command in a fresh process; target < 1 s):")
    for label, data in BAD_INPUTS.items():
        library = out.parent / "bad-input"
        shutil.rmtree(library, ignore_errors=True)
        library.mkdir(parents=True)
        (library / "bad.yaml").write_bytes(data)
        elapsed, _summary = run_validate(library, "--no-cache", "--format", "json")
        proc = subprocess.run(
            [
                str(Path(sys.executable).with_name("journeys")),
                "validate",
                "--no-cache",
                str(library),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        first = (
            proc.stdout.splitlines()[0].split(": ", 1)[1] if proc.stdout else proc.stderr.strip()
        )
        print(f"  {label:34s} {elapsed:5.2f} s  {first[:90]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--journeys", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=40)
    parser.add_argument("--subs", type=int, default=4, help="shared sub-journeys")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "library")
    args = parser.parse_args()

    size = generate(args.out, args.journeys, args.nodes, args.subs)
    print(
        f"library: {args.journeys} journeys x {args.nodes} nodes, {size / 1e6:.1f} MB of YAML in {args.out}"
    )
    # Best of three for each figure: the machine's noise should not decide a ratio.
    base = min(floor(args.out) for _ in range(3))
    print(f"floor   (yaml.CSafeLoader load only): {base:6.2f} s  (best of 3)")
    colds = []
    for _ in range(3):
        shutil.rmtree(args.out / ".journeys_cache", ignore_errors=True)
        colds.append(run_validate(args.out))
    cold, summary = min(colds)
    print(
        f"cold    journeys validate:            {cold:6.2f} s  = {cold / base:4.2f} x floor (target <= 2)   [{summary}]"
    )
    shutil.rmtree(args.out / ".journeys_cache", ignore_errors=True)
    single, _ = run_validate(args.out, "--jobs", "1")
    print(
        f"cold    journeys validate --jobs 1:   {single:6.2f} s  = {single / base:4.2f} x floor (one process, for reference)"
    )
    warm, summary = min(run_validate(args.out) for _ in range(3))
    print(
        f"warm    journeys validate:            {warm:6.2f} s  = {warm / base:4.2f} x floor (target <= 0.2) [{summary}]"
    )
    shared = args.out / "shared" / "shared-0.yaml"
    shared.write_text(
        shared.read_text(encoding="utf-8").replace("Shared identification", "Shared id"),
        encoding="utf-8",
    )
    one, summary = run_validate(args.out)
    print(
        f"changed one sub-journey (its callers re-solved): {one:6.2f} s = {one / base:4.2f} x floor [{summary}]"
    )
    single = args.out / "generated" / "journey-0000.yaml"
    one_file, summary = run_validate(args.out, "--no-cache", str(single))
    print(f"one file, no cache (pre-commit style):  {one_file:6.2f} s [{summary}]")
    bad_inputs(args.out)


if __name__ == "__main__":
    main()
