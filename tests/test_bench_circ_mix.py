"""The pure parts of the circulation benchmark's mix and paced load (bench/circ_mix.py,
issue 18): the --mix parsing and the split of the clients, the schedule of a paced
client, the latency counted from the scheduled start, and how the report labels the
levels. No timing: nothing here runs a clock."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import circ_mix as cm  # noqa: E402


def test_parse_mix_normalises_and_defaults_missing_kinds_to_zero():
    assert cm.parse_mix("place=1,checkout=2,renew=1") == {"place": 0.25, "checkout": 0.5, "renew": 0.25}
    assert cm.parse_mix(" checkout = 3 ") == {"place": 0.0, "checkout": 1.0, "renew": 0.0}
    d = cm.parse_mix(cm.DEFAULT_MIX)
    assert d["checkout"] > d["place"] and d["checkout"] > d["renew"]      # lending dominates
    assert sum(d.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("spec, says", [
    ("hold=1", "KIND=SHARE"), ("place", "KIND=SHARE"), ("place=x", "not a number"),
    ("place=-1,renew=1", ">= 0"), ("place=nan", "finite"), ("place=0,renew=0", "add up to 0"),
    ("place=1,place=2", "twice"), ("", "add up to 0"),
])
def test_parse_mix_refuses_bad_specs_with_a_reason(spec, says):
    with pytest.raises(ValueError, match=says):
        cm.parse_mix(spec)


def test_split_clients_keeps_the_total_and_the_shares():
    mix = cm.parse_mix(cm.DEFAULT_MIX)                       # 0.2 / 0.6 / 0.2
    assert cm.split_clients(64, mix) == {"place": 13, "checkout": 38, "renew": 13}
    assert cm.split_clients(16, mix) == {"place": 3, "checkout": 10, "renew": 3}
    for n in (1, 2, 3, 7, 64, 65):
        got = cm.split_clients(n, cm.parse_mix("place=0.3,checkout=0.4,renew=0.3"))
        assert sum(got.values()) == n
    # every kind with a share gets a client once there are enough clients
    assert cm.split_clients(3, cm.parse_mix("place=0.01,checkout=0.98,renew=0.01")) == \
        {"place": 1, "checkout": 1, "renew": 1}
    assert cm.split_clients(5, cm.parse_mix("checkout=1")) == {"place": 0, "checkout": 5, "renew": 0}


def test_split_over_processes_keeps_each_kind_total():
    parts = cm.split_over_processes({"place": 13, "checkout": 38, "renew": 13}, 2)
    assert parts == [{"place": 7, "checkout": 19, "renew": 7}, {"place": 6, "checkout": 19, "renew": 6}]
    parts = cm.split_over_processes({"place": 1, "checkout": 2, "renew": 0}, 3)
    assert [sum(p.values()) for p in parts] == [2, 1, 0]
    assert {k: sum(p[k] for p in parts) for k in parts[0]} == {"place": 1, "checkout": 2, "renew": 0}


def test_pacer_schedule_is_deterministic_increasing_and_at_the_rate():
    rate = 500 / 64                                           # --rate 500 over 64 clients
    a = cm.Pacer(rate, 20261120, 7).offsets(2000)
    assert a == cm.Pacer(rate, 20261120, 7).offsets(2000)     # same seed and client: same schedule
    assert a != cm.Pacer(rate, 20261120, 8).offsets(2000)     # another client: another phase and jitter
    assert a != cm.Pacer(rate, 1, 7).offsets(2000)
    interval = 1 / rate
    assert 0 <= a[0] < interval * (1 + cm.JITTER)
    gaps = [y - x for x, y in zip(a, a[1:])]
    assert min(gaps) >= interval * (1 - 2 * cm.JITTER) - 1e-9   # strictly increasing, never a burst
    assert max(gaps) <= interval * (1 + 2 * cm.JITTER) + 1e-9
    # each slot stays within its quarter interval: the mean rate is the rate, no drift
    phase = cm.Pacer(rate, 20261120, 7).phase
    for k, x in enumerate(a):
        assert abs(x - (phase + k * interval)) <= cm.JITTER * interval + 1e-9
    assert (len(a) - 1) / (a[-1] - a[0]) == pytest.approx(rate, rel=0.01)
    p = cm.Pacer(rate, 1, 0)
    assert p.peek() == p.peek() == p.take() and p.peek() > 0   # peek does not move the schedule


def test_pacers_of_the_clients_spread_over_the_first_interval():
    rate = 1.0
    phases = sorted(cm.Pacer(rate, 5, k).phase for k in range(64))
    assert phases[0] < 0.1 and phases[-1] > 0.9               # not all 64 at once at the start


@pytest.mark.parametrize("rate", [0, -1, float("inf"), float("nan")])
def test_pacer_refuses_a_rate_that_is_not_positive(rate):
    with pytest.raises(ValueError):
        cm.Pacer(rate, 1, 0)


def test_latency_counts_from_the_scheduled_start():
    # on time: latency = service time, not late
    assert cm.paced_latency(10.000, 10.000, 10.050) == pytest.approx((50.0, 50.0, False))
    # the client was 300 ms behind (the server stalled the previous operation): the wait counts
    lat, service, late = cm.paced_latency(10.000, 10.300, 10.350)
    assert (lat, service, late) == (pytest.approx(350.0), pytest.approx(50.0), True)
    # under 10 ms late is not late; just over is
    assert cm.paced_latency(1.0, 1.0099, 1.02)[2] is False
    assert cm.paced_latency(1.0, 1.0101, 1.02)[2] is True
    # sent before its slot (a rounding clock): counted from the actual start, never negative
    assert cm.paced_latency(5.0, 4.999, 5.001) == pytest.approx((2.0, 2.0, False))


def test_loans_reserved_for_the_mix_renewals():
    # 500/s offered over 64 clients, 16 of them renewing, for 10 s: 1,250 renewals + 10 % + one a client
    assert cm.mix_needs_loans(500, 16, 64, 10) == 1375 + 16
    assert cm.mix_needs_loans(None, 13, 64, 10) == cm.CLOSED_RENEWALS_PER_CLIENT_S * 13 * 10
    assert cm.mix_needs_loans(500, 0, 64, 10) == 0


def test_the_loans_of_a_level_follow_the_renewing_clients_of_each_process():
    loans = list(range(47))
    parts = cm.split_loans(loans, [2, 1])
    assert [len(p) for p in parts] == [31, 16] and sorted(parts[0] + parts[1]) == loans
    assert cm.split_loans(loans, [0, 3]) == [[], loans]
    assert cm.split_loans(loans, [3, 0]) == [loans, []]
    assert cm.split_loans([], [1, 1]) == [[], []]


def test_report_labels_closed_and_paced_levels_and_keeps_the_old_labels():
    import circulation_bench as cb

    def level(**kw):
        r = {"concurrency": 64, "ops": 10, "ops_per_s": 100.0, "p50_ms": 1.0, "p99_ms": 2.0, "mean_ms": 1.2,
             "errors": 0, "refusals": 0, "loadavg_before": 1.0, "bounded_by": "seconds",
             "per_op": {"place": {"ops": 10, "ops_per_s": 100.0, "p50_ms": 1.0, "p99_ms": 2.0,
                                  "mean_ms": 1.2, "refusals": {}}}}
        r.update(kw)
        return r

    paced = {"offered_per_s": 500.0, "achieved_per_s": 498.0, "late_over_10ms": 3, "late_max_ms": 12.5,
             "not_sent": 0, "service_p50_ms": 0.9, "service_p99_ms": 1.8}
    out = cb.report({"phases": {
        "place": {"c64": level()},
        "mix": {"c64": level(mode="closed", mix_clients={"place": 13, "checkout": 38, "renew": 13}),
                "c64@500/s": level(mode="paced 500/s", paced=paced)}}})
    lines = out.splitlines()
    assert any(ln.startswith("c64 ") and "closed" not in ln for ln in lines)   # the old phases: as before
    assert any(ln.startswith("c64 closed ") for ln in lines)
    assert any(ln.startswith("c64 paced 500/s ") for ln in lines)
    assert "clients place 13, checkout 38, renew 13" in out
    assert "offered 500/s, achieved 498.0/s, started > 10 ms late 3 (max 12.5 ms), not sent 0" in out
    assert cb.level_key(64, 1, None) == "c64" and cb.level_key(64, 2, None) == "c64w2"
    assert cb.level_key(64, 1, 500.0) == "c64@500/s" and cb.level_key(64, 2, 62.5) == "c64w2@62.5/s"


@pytest.mark.parametrize("args, says", [
    (["--mix", "hold=1"], "KIND=SHARE"), (["--rate", "0"], "--rate"), (["--rate", "x"], "a number or numbers"),
    (["--no-closed"], "--no-closed needs --rate"), (["--phases", "mixed"], "unknown phase"),
])
def test_bad_options_are_usage_errors(args, says, capsys):
    import circulation_bench as cb
    with pytest.raises(SystemExit) as e:
        cb.main(["--no-nightly", *args])
    assert e.value.code == 2
    assert says in capsys.readouterr().err


def test_a_repeated_level_gets_its_own_key():
    # --concurrency 64,64 --rate 400,500: the second 64-client levels were stored
    # under the first ones' keys (and shared their reserved loans)
    keys = ["c64", "c64@400/s", "c64@500/s", "c64", "c64@400/s", "c64@500/s", "c64"]
    assert cm.unique_keys(keys) == ["c64", "c64@400/s", "c64@500/s", "c64#2", "c64#2@400/s",
                                    "c64#2@500/s", "c64#3"]
    assert cm.unique_keys(["c1", "c64w2", "c64w2@62.5/s"]) == ["c1", "c64w2", "c64w2@62.5/s"]
    assert len(set(cm.unique_keys(keys))) == len(keys)


def test_stall_summaries():
    import circ_stalls as cs
    s = cs.summarise_pauses([(0.5, 3.0), (1.0, 120.0), (2.0, 25.0)], threshold_ms=20)
    assert s["count"] == 3 and s["max_ms"] == 120.0 and s["total_ms"] == 148.0
    assert s["over_20ms"] == 2 and s["longest"] == [[1.0, 120.0], [2.0, 25.0]]
    assert cs.summarise_pauses([])["max_ms"] == 0.0
    # waiting backends sampled every 20 ms: two runs, split by a sample with none and by a gap
    samples = [(0.00, 0), (0.02, 2), (0.04, 5), (0.06, 1), (0.08, 0), (0.10, 3), (0.50, 4), (0.52, 0)]
    assert cs.episodes(samples, gap_s=0.06) == [
        {"start_s": 0.02, "seconds": 0.04, "max_waiting": 5},
        {"start_s": 0.1, "seconds": 0.0, "max_waiting": 3},
        {"start_s": 0.5, "seconds": 0.0, "max_waiting": 4}]
    assert cs.episodes([], gap_s=1) == []


async def test_the_stall_probe_counts_asyncpg_type_lookups_and_puts_the_method_back(monkeypatch):
    import asyncpg.connection as apc

    import circ_stalls as cs

    async def fake_lookup(conn, typeoids, timeout):      # stands in for the driver's own
        return ("types", typeoids)

    monkeypatch.setattr(apc.Connection, "_introspect_types", fake_lookup)
    probe = cs.StallProbe(None)                          # no server: the client's recorders only
    await probe.start()
    assert apc.Connection._introspect_types is not fake_lookup
    assert await apc.Connection._introspect_types(object(), {2287}, 10) == ("types", {2287})
    await probe.stop()
    assert apc.Connection._introspect_types is fake_lookup
    seen = probe.summary()["type_introspections"]
    assert seen["count"] == 1 and seen["oids"] == {"[2287]": 1}
