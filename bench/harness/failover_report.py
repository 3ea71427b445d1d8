"""What bench/failover.py reports: latency per action before and after the kill, the affinity audit of the proxy log, and the verdict."""

from __future__ import annotations

import statistics
from pathlib import Path

from harness.cluster import AFFINITY_COOKIE, Cluster, Kill, Student
from harness.stats import latency_row

ACTIONS = ["open", "upload", "fwd_step", "denoise_step", "to_denoise (1st)", "to_denoise", "to_forward"]


def fmt(row: dict) -> str:
    return f"{row['n']:>5}{row['p50']:>7.2f}{row['p95']:>7.2f}" if row.get("n") else f"{0:>5}{'-':>7}{'-':>7}"


def affinity_audit(log: Path, kill: Kill) -> dict:
    """From haproxy's log: requests whose cookie named a replica and that another replica served."""
    with_cookie = moved_while_up = redispatched = 0
    examples = []
    for line in log.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) < 6 or not parts[5].startswith(f"cookie={AFFINITY_COOKIE}="):
            continue
        ts, server, wanted = float(parts[0]), parts[1], parts[5].split("=", 2)[2]
        with_cookie += 1
        if server == wanted:
            continue
        if kill.wall is not None and wanted == kill.replica and ts >= kill.wall:
            redispatched += 1  # its replica was dead: sent elsewhere, as intended
        else:
            moved_while_up += 1
            examples.append(line)
    return {"requests_with_cookie": with_cookie, "served_elsewhere_while_up": moved_while_up,
            "redispatched_after_kill": redispatched, "examples": examples[:5]}  # fmt: skip


def report(students: list[Student], summary: dict, kill: Kill, peaks: dict, cluster: Cluster) -> dict:
    t0 = summary["t0"]
    cut = kill.time if kill.time is not None else float("inf")
    events = [e for st in students for e in st.events]
    if kill.time is not None:
        print(f"\n{'action':<18}{'before the kill':>19}{'after the kill':>19}")
        print(f"{'':<18}{'n':>5}{'p50 s':>7}{'p95 s':>7}{'n':>5}{'p50 s':>7}{'p95 s':>7}")
    else:
        print(f"\n{'action':<18}{'n':>5}{'p50 s':>7}{'p95 s':>7}")
    rows = {}
    for action in ACTIONS + sorted({e[1] for e in events} - set(ACTIONS)):
        before = latency_row([e[2] for e in events if e[1] == action and e[0] < cut])
        after = latency_row([e[2] for e in events if e[1] == action and e[0] >= cut])
        if before["n"] or after["n"]:
            rows[action] = {"before": before, "after": after}
            print(f"{action:<18}{fmt(before)}{fmt(after) if kill.time is not None else ''}")
    steps = {"fwd_step", "denoise_step"}
    sb = latency_row([e[2] for e in events if e[1] in steps and e[0] < cut])
    sa = latency_row([e[2] for e in events if e[1] in steps and e[0] >= cut])
    print(f"{'all slider steps':<18}{fmt(sb)}{fmt(sa) if kill.time is not None else ''}")

    # errors: a session on the killed replica losing its connection after the kill is the
    # expected failover; every other error counts against the target of 0
    lost, others = [], []
    for st in students:
        for at, replica, text in st.errors:
            expected = kill.time is not None and at >= kill.time and replica == kill.replica and at == st.lost_at
            (lost if expected else others).append((st, at, replica, text))
    if kill.time is not None:
        survivors = sum(not st.lost_at for st in students)
        print(f"\nsessions: {len(students)}; on the killed replica at the kill and lost: {len(lost)}; "
              f"never lost their replica: {survivors}")  # fmt: skip
        print(f"errors on sessions whose replica survived, or after reconnecting: {len(others)} (target 0)")
    else:
        print(f"\nsessions: {len(students)}; errors: {len(others)} (target 0)")
    for _st, at, replica, text in others[:20]:
        print(f"  t = {at - t0:6.1f} s on {replica}: {text}")
    recovery = {}
    if kill.time is not None:
        down = f"{kill.down_after_s:.1f} s" if kill.down_after_s is not None else "not within 30 s"
        print(f"\nkilled {kill.replica} at t = {kill.time - t0:.1f} s; haproxy marked it DOWN after {down}")
        seen: dict[str, int] = {}
        for _st, _at, _replica, text in lost:
            msg = text.split(": ", 1)[-1]
            seen[msg] = seen.get(msg, 0) + 1
        print("what its sessions saw (harness/students.py's error text, one per session):")
        for msg, n in sorted(seen.items(), key=lambda kv: -kv[1]):
            print(f"  {n} x {msg}")
        back = {"open": [], "upload": []}
        noticed, moved_to, never = [], {}, 0
        for st, at, _replica, _text in lost:
            noticed.append(at - kill.time)
            later = [e for e in st.events if e[0] > at]
            first = {a: next((e for e in later if e[1] == a), None) for a in back}
            if first["open"] is None:
                never += 1
                continue
            moved_to[first["open"][3]] = moved_to.get(first["open"][3], 0) + 1
            for a, e in first.items():
                if e is not None:
                    back[a].append((e[0] - kill.time, e[0] - at))
        print(f"  noticed the loss (at their next action) after: {_p(noticed)}")
        for a, label in (("open", "page shown again"), ("upload", "own photo shown again")):
            print(f"  {label}: from the kill {_p([x[0] for x in back[a]])}; "
                  f"from noticing {_p([x[1] for x in back[a]])}")  # fmt: skip
        print(f"  reconnected to: {moved_to or '-'}; never working again before the end: {never}")
        recovery = {"replica": kill.replica, "down_after_s": kill.down_after_s, "lost_sessions": len(lost),
                    "messages": seen, "noticed_s": noticed, "open_again_s": back["open"],
                    "upload_again_s": back["upload"], "moved_to": moved_to, "never_recovered": never}  # fmt: skip

    audit = affinity_audit(cluster.folder / "haproxy.log", kill)
    print(f"\naffinity (haproxy log): {audit['requests_with_cookie']} requests carried a replica cookie; "
          f"served by another replica while theirs was up: {audit['served_elsewhere_while_up']} (target 0); "
          f"sent elsewhere because theirs was dead: {audit['redispatched_after_kill']}")  # fmt: skip
    for line in audit["examples"]:
        print(f"  {line}")
    print("peak RSS per replica: " + ", ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in peaks.items()))
    n_actions = len(events)
    print(f"actions done: {n_actions} in {summary['wall_s']:.0f} s ({n_actions / summary['wall_s']:.1f} per second)")
    return {"actions": rows, "slider_steps": {"before": sb, "after": sa},
            "errors_not_failover": [f"t={at - t0:.1f}s {replica}: {text}" for _s, at, replica, text in others],
            "failover": recovery, "affinity": audit, "peak_rss_bytes": peaks, "actions_done": n_actions,
            "wall_s": summary["wall_s"]}  # fmt: skip


def _p(values: list[float]) -> str:
    if not values:
        return "-"
    return f"p50 {statistics.median(values):.1f} s, max {max(values):.1f} s (n = {len(values)})"
