"""results.json -> results.md (one table, the profiles side by side, ratios against seed) and PNG plots.

python bench/report.py [bench/results]      # rewrite the report from the stored JSON
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

# "relay": bench/floor.py, the floor of the fan-out (plain websockets, one process), measured
# with the fan-out load only.
PROFILES = ["seed", "defaults", "max", "relay"]
COLORS = {"seed": "#888888", "defaults": "#1f77b4", "max": "#d62728", "relay": "#2ca02c"}
# The aims (defaults against seed, on 2 cores).
AIM_HTTP_RATIO = 3
AIM_FANOUT_RATIO = 5
AIM_CONNECTIONS = 10000
AIM_WARM_SECONDS = 15
AIM_IMAGE_RATIO = 0.5
# Issue 16: fan-out near Python's floor, a no-change converge near Compose's.
AIM16_DELIVERIES = 6000
AIM16_CPU_US = 150
AIM16_WARM_SECONDS = 6
AIM16_FLOOR_RATIO = 3
AIM16_ROOM_LIST_RATIO = 4


def _get(data: dict, *path, default=None):
    for key in path:
        in_dict = isinstance(data, dict) and key in data
        in_list = isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data)
        if in_dict or in_list:
            data = data[key]
        else:
            return default
    return data


def fmt(value, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def ratio(value, base) -> str:
    if not isinstance(value, int | float) or not isinstance(base, int | float) or not base:
        return "—"
    return f"{value / base:.2f}×"


def best_http(profile: dict, endpoint: str):
    rows = _get(profile, "http", endpoint, default=[])
    return max((row["rps"] for row in rows), default=None)


def fanout_best_step(profile: dict):
    steps = _get(profile, "fanout", "steps", default=[])
    limit = _get(profile, "fanout", "p99_limit_ms", default=100)
    good = [s for s in steps if s["lost"] == 0 and s["p99_ms"] is not None and s["p99_ms"] < limit]
    return max(good, key=lambda s: s["delivered_rate"], default=None)


def table(results: dict) -> list[str]:
    profiles = results["profiles"]
    cols = [p for p in PROFILES if p in profiles]
    images = results.get("images", {})
    rows: list[tuple[str, dict, bool]] = []  # label, values per profile, ratio shown

    def add(label: str, getter, digits: int = 0, show_ratio: bool = True) -> None:
        values = {p: getter(profiles[p], p) for p in cols}
        rows.append((label, {p: (v, digits) for p, v in values.items()}, show_ratio))

    def section(label: str) -> None:
        rows.append((f"**{label}**", {}, False))

    levels = results.get("load", {}).get("http_levels", [])
    for endpoint, path in (("room_list", "`/` room list"), ("healthz", "`/healthz`")):
        section(f"HTTP {path} through nginx (wrk, 2 threads)")
        for i, level in enumerate(levels):
            add(
                f"req/s at {level} connections",
                lambda d, _p, i=i, e=endpoint: _get(d, "http", e, i, "rps"),
            )
            add(
                f"p50 / p99 ms at {level} connections",
                lambda d, _p, i=i, e=endpoint: _latency(_get(d, "http", e, i)),
                show_ratio=False,
            )
        add("best req/s", lambda d, _p, e=endpoint: best_http(d, e))
        add(
            "engine CPU ms per request (dockerd, shims, docker-proxy)",
            lambda d, _p, e=endpoint: _cpu_per(
                _get(d, "http", e, default=[]), "requests", 1e3, "engine_cpu_seconds"
            ),
            2,
        )
        add(
            "stack CPU ms per request (all levels)",
            lambda d, _p, e=endpoint: _cpu_per(_get(d, "http", e, default=[]), "requests", 1e3),
            2,
        )
        add(
            "errors (socket + non-2xx, all levels)",
            lambda d, _p, e=endpoint: sum(
                r["socket_errors"] + r["non_2xx"] for r in _get(d, "http", e, default=[])
            ),
            show_ratio=False,
        )

    load = results.get("load", {})
    section(
        f"WebSocket fan-out, {load.get('fan_rooms')} rooms × {load.get('fan_clients')} clients, one sender per room"
    )
    add(
        "delivered msg/s, best step with p99 < 100 ms and 0 lost",
        lambda d, _p: _get(
            fanout_best_step(d) or {},
            "delivered_rate",
            default=0 if _get(d, "fanout") else None,
        ),
    )
    add(
        "— its p50 / p99 ms",
        lambda d, _p: _latency(fanout_best_step(d)),
        show_ratio=False,
    )
    add(
        "delivered msg/s at the highest step run",
        lambda d, _p: _get(d, "fanout", "steps", -1, "delivered_rate"),
    )
    add(
        "— offered msg/s there, p99 ms",
        lambda d, _p: _offered(_get(d, "fanout", "steps", -1)),
        show_ratio=False,
    )
    add(
        "stack CPU µs per delivered message (all steps)",
        lambda d, _p: _cpu_per(_get(d, "fanout", "steps", default=[]), "delivered", 1e6),
    )
    add(
        "engine CPU µs per delivered message (all steps)",
        lambda d, _p: _cpu_per(
            _get(d, "fanout", "steps", default=[]),
            "delivered",
            1e6,
            "engine_cpu_seconds",
        ),
    )
    add(
        "messages lost within the drain (all steps of all rounds)",
        lambda d, _p: _lost_all_rounds(d),
        show_ratio=False,
    )

    section(
        f"Idle WebSocket connections (ramp toward {fmt(load.get('cap_target'))}, "
        f"{fmt(load.get('cap_ramp_seconds'))} s at most, held {fmt(load.get('cap_hold_seconds'))} s)"
    )
    add("connections held", lambda d, _p: _get(d, "capacity", "held"))
    add(
        "— ramp stopped by",
        lambda d, _p: _capacity_limit(_get(d, "capacity")),
        show_ratio=False,
    )
    add(
        "ramp seconds",
        lambda d, _p: _get(d, "capacity", "ramp_seconds"),
        1,
        show_ratio=False,
    )
    add(
        "stack memory per connection, KiB",
        lambda d, _p: _kib(_get(d, "capacity", "memory_per_connection_bytes")),
        1,
    )
    add(
        "docker-proxy memory per connection, KiB",
        lambda d, _p: _kib(_get(d, "capacity", "docker_proxy", "rss_per_connection_bytes")),
        1,
    )

    section("Deploy (wall time, s)")
    add(
        "cold converge (no app image, no project directory)",
        lambda d, _p: _get(d, "deploy", "cold_converge", "seconds"),
        1,
        show_ratio=False,
    )
    add(
        "converge from the previous profile",
        lambda d, _p: _get(d, "deploy", "converge", "seconds"),
        1,
        show_ratio=False,
    )
    add(
        "warm converge (nothing to change)",
        lambda d, _p: _get(d, "deploy", "warm_converge", "seconds"),
        1,
    )
    add(
        "— changed tasks",
        lambda d, _p: _get(d, "deploy", "warm_converge", "changed"),
        show_ratio=False,
    )
    add(
        "bare `docker compose up -d --wait`, stack running (floor)",
        lambda d, _p: _get(d, "deploy", "compose_up_running", "seconds"),
        1,
    )
    add(
        "— warm converge ÷ the floor (aim ≤ 3)",
        lambda d, _p: _floor_ratio(_get(d, "deploy")),
        1,
        show_ratio=False,
    )
    add(
        "converge with one line of app code changed (build, release steps, rollout)",
        lambda d, _p: _get(d, "deploy", "code_change_converge", "seconds"),
        1,
        show_ratio=False,
    )
    add(
        "bare `docker compose up -d --wait`, stack stopped",
        lambda d, _p: _compose_stopped(_get(d, "deploy", "compose_up_stopped")),
        1,
        show_ratio=False,
    )

    if images:
        section("App image (seed column: bench/seedstyle/Dockerfile on the same base)")
        add(
            "size, MB",
            lambda _d, p: (
                (images.get("seedstyle_bytes") if p == "seed" else images.get("role_bytes")) / 1e6
                if images.get("role_bytes") and p != "relay"
                else None
            ),
        )
        if images.get("nocache"):
            add(
                "build from scratch (--no-cache), s",
                lambda _d, p: (
                    images.get("seedstyle_build_seconds")
                    if p == "seed"
                    else images.get("role_build_seconds")
                ),
                1,
            )

    # Each profile against the seed, and the role's against the floor relay (fan-out rows).
    stack_cols = [p for p in cols if p != "relay"]
    versus = [(p, "seed") for p in stack_cols if p != "seed" and "seed" in cols] + [
        (p, "relay") for p in stack_cols if p != "seed" and "relay" in cols
    ]
    lines = [
        "| | " + " | ".join(cols) + "".join(f" | {p} ÷ {base}" for p, base in versus) + " |",
        "|---" * (1 + len(cols) + len(versus)) + "|",
    ]
    for label, values, show_ratio in rows:
        if not values:
            lines.append(f"| {label} |" + " |" * (len(cols) + len(versus)))
            continue
        cells = [fmt(values[p][0], values[p][1]) for p in cols]
        ratios = [ratio(values[p][0], values[base][0]) if show_ratio else "" for p, base in versus]
        lines.append(f"| {label} | " + " | ".join(cells + ratios) + " |")
    return lines


def _cpu_per(rows: list[dict], count_key: str, scale: float, key: str = "stack_cpu_seconds"):
    """CPU used per request or delivery over all rows that measured it: the stack's
    containers (key stack_cpu_seconds) or the engine's helpers (engine_cpu_seconds)."""
    rows = [r for r in rows if r.get(key)]
    count = sum(r[count_key] for r in rows)
    if not count:
        return None
    return scale * sum(sum(r[key].values()) for r in rows) / count


def _lost_all_rounds(profile: dict):
    rounds = [r["fanout"] for r in profile.get("rounds", []) if "fanout" in r]
    if not rounds and _get(profile, "fanout"):
        rounds = [profile["fanout"]]
    if not rounds:
        return None
    lost = [sum(s["lost"] for s in f["steps"]) for f in rounds]
    if not any(lost):
        return 0
    where = [
        f"{s['lost']:,} at {s['offered_delivery_rate']:,.0f}/s offered (round {n})"
        for n, f in enumerate(rounds, 1)
        for s in f["steps"]
        if s["lost"]
    ]
    return "; ".join(where)


def _latency(row):
    if not row or row.get("p50_ms") is None:
        return None
    return f"{row['p50_ms']:.1f} / {row['p99_ms']:.1f}"


def _offered(step):
    if not step:
        return None
    return (
        f"{step['offered_delivery_rate']:,.0f}, {step['p99_ms']:.0f}"
        if step.get("p99_ms") is not None
        else "—"
    )


def _floor_ratio(deploy):
    """The warm converge against the bare `compose up` measured right after it."""
    warm = (deploy or {}).get("warm_converge", {}).get("seconds")
    floor = (deploy or {}).get("compose_up_running", {}).get("seconds")
    return round(warm / floor, 1) if warm and floor else None


def _compose_stopped(entry):
    if not entry:
        return None
    return entry["seconds"] if entry["ok"] else f"failed after {entry['seconds']:.1f}"


def _capacity_limit(cap):
    if not cap:
        return None
    if cap["failures"]:
        return "failures: " + ", ".join(f"{k} {v}" for k, v in cap["failures"].items())
    if cap.get("limited_by_proxy"):
        return f"docker-proxy's file limit ({cap['proxy_cap']:,})"
    return "target reached" if cap["opened"] >= cap["target"] else "time bound"


def _kib(value):
    return value / 1024 if isinstance(value, int | float) else None


def _check_aim(lines: list[str], label, value_text, ok) -> None:
    """One row of an aims table: the aim, what was measured, whether it is met."""
    lines.append(f"| {label} | {value_text} | {'yes' if ok else 'no'} |")


def aims(results: dict) -> list[str]:
    profiles = results["profiles"]
    d, s = profiles.get("defaults", {}), profiles.get("seed", {})
    lines = ["| aim (defaults, 2 cores) | measured | met |", "|---|---|---|"]

    for endpoint, name in (("room_list", "`/`"), ("healthz", "`/healthz`")):
        dv, sv = best_http(d, endpoint), best_http(s, endpoint)
        if dv and sv:
            _check_aim(
                lines,
                f"HTTP req/s ≥ {AIM_HTTP_RATIO}× seed, {name}",
                f"{dv:,.0f} vs {sv:,.0f}: {dv / sv:.2f}×",
                dv / sv >= AIM_HTTP_RATIO,
            )
    db, sb = fanout_best_step(d), fanout_best_step(s)
    if _get(d, "fanout") and _get(s, "fanout"):
        dv, sv = (
            (db or {}).get("delivered_rate", 0),
            (sb or {}).get("delivered_rate", 0),
        )
        _check_aim(
            lines,
            f"fan-out msg/s at p99 < 100 ms ≥ {AIM_FANOUT_RATIO}× seed",
            f"{dv:,.0f} vs {sv:,.0f}: {ratio(dv, sv)}",
            bool(sv) and dv / sv >= AIM_FANOUT_RATIO,
        )
    held = _get(d, "capacity", "held")
    if held is not None:
        _check_aim(
            lines,
            f"{AIM_CONNECTIONS:,} idle connections held",
            f"{held:,}",
            held >= AIM_CONNECTIONS,
        )
    warm = _get(d, "deploy", "warm_converge")
    if warm:
        _check_aim(
            lines,
            f"warm converge ≤ {AIM_WARM_SECONDS} s with changed=0",
            f"{warm['seconds']} s, changed={warm['changed']}",
            warm["seconds"] <= AIM_WARM_SECONDS and warm["changed"] == 0,
        )
    images = results.get("images", {})
    if images.get("role_bytes") and images.get("seedstyle_bytes"):
        r = images["role_bytes"] / images["seedstyle_bytes"]
        _check_aim(
            lines,
            "app image ≤ half the seed-style image",
            f"{images['role_bytes'] / 1e6:,.0f} MB vs {images['seedstyle_bytes'] / 1e6:,.0f} MB: {r:.2f}×",
            r <= AIM_IMAGE_RATIO,
        )
    return lines


def aims_16(results: dict) -> list[str]:
    """Issue 16's aims for the defaults, with the floor relay beside the fan-out."""
    profiles = results["profiles"]
    d, s, relay = (profiles.get(p, {}) for p in ("defaults", "seed", "relay"))
    lines = ["| aim (defaults, 2 cores) | measured | met |", "|---|---|---|"]

    if _get(d, "fanout"):
        best = fanout_best_step(d) or {}
        floor = (fanout_best_step(relay) or {}).get("delivered_rate")
        rate = best.get("delivered_rate", 0)
        _check_aim(
            lines,
            f"fan-out ≥ {AIM16_DELIVERIES:,} deliveries/s at p99 < 100 ms, 0 lost",
            f"{rate:,.0f}" + (f" (floor relay {floor:,.0f})" if floor else ""),
            rate >= AIM16_DELIVERIES,
        )
        cpu = _cpu_per(_get(d, "fanout", "steps", default=[]), "delivered", 1e6)
        relay_cpu = _cpu_per(_get(relay, "fanout", "steps", default=[]), "delivered", 1e6)
        if cpu is not None:
            _check_aim(
                lines,
                f"stack CPU ≤ {AIM16_CPU_US} µs per delivery",
                f"{cpu:,.0f} µs"
                + (
                    f" ({cpu / relay_cpu:.1f}× the floor relay's {relay_cpu:,.0f})"
                    if relay_cpu
                    else ""
                ),
                cpu <= AIM16_CPU_US,
            )
    warm = _get(d, "deploy", "warm_converge")
    if warm:
        _check_aim(
            lines,
            f"no-change converge ≤ {AIM16_WARM_SECONDS} s with changed=0",
            f"{warm['seconds']} s, changed={warm['changed']}",
            warm["seconds"] <= AIM16_WARM_SECONDS and warm["changed"] == 0,
        )
        ratio_to_floor = _floor_ratio(_get(d, "deploy"))
        if ratio_to_floor is not None:
            _check_aim(
                lines,
                f"no-change converge ≤ {AIM16_FLOOR_RATIO}× bare `compose up`",
                f"{ratio_to_floor}× ({_get(d, 'deploy', 'compose_up_running', 'seconds')} s)",
                ratio_to_floor <= AIM16_FLOOR_RATIO,
            )
    code = _get(d, "deploy", "code_change_converge")
    if code:
        lines.append(
            f"| code-change converge, start to the new release serving | {code['seconds']} s, changed={code['changed']} | — |"
        )
    dv, sv = best_http(d, "room_list"), best_http(s, "room_list")
    if dv and sv:
        _check_aim(
            lines,
            f"`/` ≥ {AIM16_ROOM_LIST_RATIO}× seed (kept)",
            f"{dv:,.0f} vs {sv:,.0f}: {dv / sv:.2f}×",
            dv / sv >= AIM16_ROOM_LIST_RATIO,
        )
    held = _get(d, "capacity", "held")
    if held is not None:
        _check_aim(
            lines,
            f"{AIM_CONNECTIONS:,} idle connections held (kept)",
            f"{held:,}",
            held >= AIM_CONNECTIONS,
        )
    # The role's profiles; the seed's one daphne is overloaded past its drain at the top step.
    lost = {
        p: _lost_all_rounds(profiles[p])
        for p in ("defaults", "max")
        if _get(profiles.get(p, {}), "fanout")
    }
    if lost:
        where = "; ".join(f"{p}: {n}" for p, n in lost.items() if n)
        _check_aim(lines, "0 messages lost, defaults and max (kept)", where or "0", not where)
    return lines


def headline(results: dict, profile: str) -> dict:
    """The figures the aims are about, for one profile of one run."""
    p = results["profiles"].get(profile, {})
    warm = _get(p, "deploy", "warm_converge") or {}
    # The seed's image is the seed-style Dockerfile's; every other profile runs the role's.
    image = results.get("images", {}).get("seedstyle_bytes" if profile == "seed" else "role_bytes")
    return {
        "HTTP `/` req/s": best_http(p, "room_list"),
        "HTTP `/healthz` req/s": best_http(p, "healthz"),
        "fan-out msg/s at p99 < 100 ms": (fanout_best_step(p) or {}).get("delivered_rate")
        if _get(p, "fanout")
        else None,
        "idle WebSocket connections held": _get(p, "capacity", "held"),
        "warm converge, s": warm.get("seconds"),
        "app image, MB": image / 1e6 if image else None,
    }


def before_after(before: dict, after: dict) -> list[str]:
    """The role's defaults in an earlier run (before.json) next to this run, with each run's
    ratio to its own seed profile (the seed is the yardstick; the machines' load differs)."""
    b, a = headline(before, "defaults"), headline(after, "defaults")
    bs, as_ = headline(before, "seed"), headline(after, "seed")
    lines = [
        f"Defaults of commit `{before.get('commit', '?')[:12]}` ({before.get('finished', '?')}) "
        f"against this run's; each with its ratio to the seed profile measured in the same run.",
        "",
        "| defaults | before | after | after ÷ before | before ÷ seed | after ÷ seed |",
        "|---|---|---|---|---|---|",
    ]
    for key, value in a.items():
        digits = 1 if key.startswith("warm") else 0
        lines.append(
            f"| {key} | {fmt(b[key], digits)} | {fmt(value, digits)} | {ratio(value, b[key])} "
            f"| {ratio(b[key], bs[key])} | {ratio(value, as_[key])} |"
        )
    return lines


def fanout_details(results: dict) -> list[str]:
    lines = [
        "| profile | offered msg/s (sent × clients) | delivered msg/s | p50 ms | p99 ms | max ms | lost | host CPU busy | client CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in PROFILES:
        for step in _get(results, "profiles", p, "fanout", "steps", default=[]):
            lines.append(
                f"| {p} | {step['offered_delivery_rate']:,.0f} ({step['offered_send_rate']:g} × "
                f"{results['profiles'][p]['fanout']['clients_per_room']}) | {step['delivered_rate']:,.0f} | "
                f"{fmt(step['p50_ms'], 1)} | {fmt(step['p99_ms'], 1)} | {fmt(step['max_ms'], 0)} | {step['lost']} | "
                f"{step['host_cpu_busy']:.0%} | {step['client_cpu']:.0%} |"
            )
    return lines


def capacity_details(results: dict) -> list[str]:
    lines = [
        "| profile | opened | held | failures | stopped early | MiB per container at hold (baseline) | host CPU busy |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in PROFILES:
        cap = _get(results, "profiles", p, "capacity")
        if not cap:
            continue
        memory = ", ".join(
            f"{name.split('-')[-2]} {held / 2**20:.0f} ({cap['memory_baseline_bytes'].get(name, 0) / 2**20:.0f})"
            for name, held in sorted(cap["memory_held_bytes"].items())
        )
        lines.append(
            f"| {p} | {cap['opened']:,} | {cap['held']:,} | {cap['failures'] or '—'} | "
            f"{'yes' if cap['stopped_early'] else 'no'} | {memory} | {cap['host_cpu_busy']:.0%} |"
        )
    return lines


def plots(out: Path, results: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # A profile or measurement left out leaves a plot without lines; its legend may be empty.
    warnings.filterwarnings("ignore", message="No artists with labels found")

    made = []
    profiles = results["profiles"]

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for p in PROFILES:
        steps = _get(profiles, p, "fanout", "steps", default=[])
        if not steps:
            continue
        x = [s["offered_delivery_rate"] for s in steps]
        left.plot(x, [s["delivered_rate"] for s in steps], "o-", color=COLORS[p], label=p)
        right.plot(x, [s["p99_ms"] for s in steps], "o-", color=COLORS[p], label=f"{p} p99")
        right.plot(
            x,
            [s["p50_ms"] for s in steps],
            "o--",
            color=COLORS[p],
            alpha=0.6,
            label=f"{p} p50",
        )
    top = max(
        (
            s["offered_delivery_rate"]
            for p in PROFILES
            for s in _get(profiles, p, "fanout", "steps", default=[])
        ),
        default=1,
    )
    left.plot(
        [0, top],
        [0, top],
        ":",
        color="black",
        linewidth=0.8,
        label="delivered = offered",
    )
    left.set(
        xlabel="offered deliveries, msg/s",
        ylabel="delivered, msg/s",
        title="WebSocket fan-out: throughput",
    )
    right.axhline(100, color="black", linestyle=":", linewidth=0.8)
    right.set(
        xlabel="offered deliveries, msg/s",
        ylabel="end-to-end latency, ms (log)",
        yscale="log",
        title="WebSocket fan-out: latency",
    )
    left.legend(fontsize=8)
    right.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "fanout.png", dpi=110)
    plt.close(fig)
    made.append("fanout.png")

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for col, (endpoint, title) in enumerate(
        (("room_list", "/ (room list)"), ("healthz", "/healthz"))
    ):
        for p in PROFILES:
            rows = _get(profiles, p, "http", endpoint, default=[])
            if not rows:
                continue
            x = [r["connections"] for r in rows]
            axes[0][col].plot(x, [r["rps"] for r in rows], "o-", color=COLORS[p], label=p)
            axes[1][col].plot(
                x, [r["p99_ms"] for r in rows], "o-", color=COLORS[p], label=f"{p} p99"
            )
            axes[1][col].plot(
                x,
                [r["p50_ms"] for r in rows],
                "o--",
                color=COLORS[p],
                alpha=0.6,
                label=f"{p} p50",
            )
        axes[0][col].set(
            xlabel="concurrent connections (wrk)",
            ylabel="requests/s",
            xscale="log",
            title=f"HTTP {title}: throughput",
        )
        axes[1][col].set(
            xlabel="concurrent connections (wrk)",
            ylabel="latency, ms (log)",
            xscale="log",
            yscale="log",
            title=f"HTTP {title}: latency",
        )
        levels = results.get("load", {}).get("http_levels", [])
        for ax in (axes[0][col], axes[1][col]):
            ax.set_xticks(levels, [str(level) for level in levels])
            ax.minorticks_off()
        axes[0][col].legend(fontsize=8)
        axes[1][col].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "http.png", dpi=110)
    plt.close(fig)
    made.append("http.png")

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for p in PROFILES:
        timeline = _get(profiles, p, "capacity", "timeline", default=[])
        if timeline:
            ax.plot(
                [t[0] for t in timeline],
                [t[1] for t in timeline],
                "-",
                color=COLORS[p],
                label=p,
            )
    ax.set(
        xlabel="seconds since the ramp started",
        ylabel="open WebSocket connections",
        title="Idle connections: ramp and hold",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "capacity.png", dpi=110)
    plt.close(fig)
    made.append("capacity.png")
    return made


def machine_lines(results: dict) -> list[str]:
    m = results.get("machine", {})
    proxy = (
        "on (docker-proxy carries every connection to 127.0.0.1)"
        if m.get("userland_proxy")
        else "off"
    )
    lines = [
        f"- CPU: {m.get('cpu')}, {m.get('cores')} cores; memory {m.get('memory_gib')} GiB",
        f"- OS: {m.get('os')}, kernel {m.get('kernel')}",
        (
            f"- Docker {m.get('docker_server')} ({m.get('docker_storage')}, "
            f"cgroup v{m.get('cgroup')}), Compose {m.get('compose')}; userland proxy {proxy}"
        ),
        (
            f"- Load generators on the same cores: {m.get('wrk')}; bench/wsload.py "
            f"(Python {m.get('python')}, websockets, one asyncio process)"
        ),
        f"- Load average at start: {', '.join(f'{x:.2f}' for x in m.get('load_average', []))}",
    ]
    return lines


def write(out: Path, results: dict, before: dict | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    made = plots(out, results) if results.get("profiles") else []
    when = results.get("finished") or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    elapsed = results.get("elapsed_seconds", 0)
    rounds = max((p.get("rounds_measured", 1) for p in results["profiles"].values()), default=1)
    contention = [
        *results.get("concurrent_work_at_start", []),
        *results.get("concurrent_work_at_end", []),
        *(line for p in results["profiles"].values() for line in p.get("concurrent_work", [])),
    ]
    md = [
        "# Benchmarks: the seed configuration against this stack",
        "",
        (
            f"`make bench` ({results.get('mode')} run) on {when}, "
            f"commit `{results.get('commit', '?')[:12]}`, {elapsed // 60} min {elapsed % 60} s. "
            "Profiles: [seed](../profiles/seed.yml), [defaults](../profiles/defaults.yml), "
            "[max](../profiles/max.yml); how it runs: [bench/README.md](../README.md). "
            "Run order: defaults (its first converge is the cold one), seed, max, "
            "on the same images and data"
            + (
                f"; HTTP and fan-out measured in {rounds} interleaved rounds, the best "
                "of them shown (other work on the cores only ever slows a round down)."
                if rounds > 1
                else "."
            )
        ),
        "",
    ]
    if contention:
        uniq = sorted({line.split(" ", 1)[1][:100] for line in contention if " " in line})
        md += [
            "**Contention:** other work shared the 2 cores during this run, so absolute numbers are low and "
            "noisy; the ratios between profiles are the more meaningful figures. Seen: "
            + "; ".join(f"`{u}`" for u in uniq[:6])
            + ("; …" if len(uniq) > 6 else ""),
            "",
        ]
    md += table(results)
    md += ["", "## Aims (issue 16)", "", *aims_16(results), ""]
    md += ["## Aims (issue 6)", "", *aims(results), ""]
    if before and before.get("profiles"):
        md += ["## Before and after the default changes", "", *before_after(before, results), ""]
    md += ["## Fan-out steps", "", *fanout_details(results), ""]
    md += ["## Idle connections", "", *capacity_details(results), ""]
    if made:
        md += ["## Plots", "", *(f"![{name}]({name})" for name in made), ""]
    md += ["## Machine", "", *machine_lines(results), ""]
    if results.get("notes"):
        md += ["## Notes", "", *(f"- {note}" for note in results["notes"]), ""]
    (out / "results.md").write_text("\n".join(md))


def load_before(out: Path) -> dict | None:
    """bench/results/before.json: a committed earlier full run to compare the defaults with."""
    path = out / "before.json"
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(__file__).resolve().parent / "results"
    write(out, json.loads((out / "results.json").read_text()), load_before(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
