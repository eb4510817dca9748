"""What dtmcli 1.7.7.0 users do, against `tandem serve`: sagas, TCC, messages.

Every test uses a fresh gid from the server (`newGid`) and its own branch service.
"""

import json
import time

import pytest
import requests
from dtmcli import msg, saga, tcc, utils

from conftest import query, wait_status


def gid_of(dtm):
    return utils.gen_gid(dtm)


def test_saga_success(dtm, svc):
    gid = gid_of(dtm)
    s = saga.Saga(dtm, gid)
    s.add({"amount": 30}, svc.url("/TransOut"), svc.url("/TransOutRevert"))
    s.add({"amount": 30}, svc.url("/TransIn"), svc.url("/TransInRevert"))
    s.submit()
    ans = wait_status(dtm, gid, "succeed")
    assert svc.paths(gid) == ["/TransOut", "/TransIn"]
    first = svc.calls_for(gid)[0]
    assert first["method"] == "POST"
    assert json.loads(first["body"]) == {"amount": 30}
    assert first["q"] == {"gid": gid, "trans_type": "saga", "branch_id": "01", "op": "action"}
    t = ans["transaction"]
    assert (t["gid"], t["trans_type"], t["status"]) == (gid, "saga", "succeed")
    ops = [(b["branch_id"], b["op"], b["status"]) for b in ans["branches"]]
    assert ops == [
        ("01", "compensate", "prepared"),
        ("01", "action", "succeed"),
        ("02", "compensate", "prepared"),
        ("02", "action", "succeed"),
    ]


def test_saga_rollback_compensates_in_reverse(dtm, svc):
    svc.answers["/Step3"] = 409
    gid = gid_of(dtm)
    s = saga.Saga(dtm, gid)
    for i in (1, 2, 3, 4):
        s.add({"step": i}, svc.url(f"/Step{i}"), svc.url(f"/Revert{i}"))
    s.submit()
    ans = wait_status(dtm, gid, "failed")
    # Step 4 never started, so it is never compensated; step 3 failed but may have done
    # part of its work, so it is compensated first.
    assert svc.paths(gid) == ["/Step1", "/Step2", "/Step3", "/Revert3", "/Revert2", "/Revert1"]
    assert ans["transaction"]["rollback_reason"]


def test_saga_wait_result(dtm, svc):
    gid = gid_of(dtm)
    s = saga.Saga(dtm, gid)
    s.add({}, svc.url("/A"), svc.url("/RevertA"))
    s.trans_base.wait_result = True
    s.submit()  # answers after the outcome
    assert query(dtm, gid)["transaction"]["status"] == "succeed"

    svc.answers["/B"] = 409
    gid = gid_of(dtm)
    s = saga.Saga(dtm, gid)
    s.add({}, svc.url("/B"), svc.url("/RevertB"))
    s.trans_base.wait_result = True
    with pytest.raises(utils.DTMFailureError):
        s.submit()
    assert query(dtm, gid)["transaction"]["status"] == "failed"


def test_resubmitted_gid_runs_once(dtm, svc):
    gid = gid_of(dtm)
    for _ in range(3):
        s = saga.Saga(dtm, gid)
        s.add({"x": 1}, svc.url("/Once"), svc.url("/OnceRevert"))
        s.trans_base.wait_result = True
        s.submit()
    wait_status(dtm, gid, "succeed")
    time.sleep(0.3)
    assert svc.paths(gid) == ["/Once"]
    # The same gid with different content is refused, and nothing runs.
    s = saga.Saga(dtm, gid)
    s.add({"x": 2}, svc.url("/Once"), svc.url("/OnceRevert"))
    with pytest.raises(utils.DTMFailureError):
        s.submit()
    assert svc.paths(gid) == ["/Once"]


def test_concurrent_saga_orders(dtm, svc):
    # dtmcli-py's set_concurrent() is broken (it reads a missing attribute), so send the
    # custom_data it means to send with requests, exactly as the Go client does.
    gid = gid_of(dtm)
    body = {
        "gid": gid,
        "trans_type": "saga",
        "steps": [{"action": svc.url(f"/C{i}"), "compensate": svc.url(f"/R{i}")} for i in range(3)],
        "payloads": ["{}", "{}", "{}"],
        "custom_data": json.dumps({"concurrent": True, "orders": {"2": [0, 1]}}),
        "wait_result": True,
    }
    r = requests.post(dtm + "/submit", json=body, timeout=10)
    assert r.status_code == 200, r.text
    paths = svc.paths(gid)
    assert sorted(paths[:2]) == ["/C0", "/C1"] and paths[2] == "/C2"


def test_tcc_confirm(dtm, svc):
    gid = gid_of(dtm)

    def body(t):
        t.call_branch({"amount": 30}, svc.url("/TryOut"), svc.url("/ConfirmOut"), svc.url("/CancelOut"))
        t.call_branch({"amount": 30}, svc.url("/TryIn"), svc.url("/ConfirmIn"), svc.url("/CancelIn"))

    assert tcc.tcc_global_transaction(dtm, gid, body) == gid
    ans = wait_status(dtm, gid, "succeed")
    paths = svc.paths(gid)
    assert paths[:2] == ["/TryOut", "/TryIn"]
    assert sorted(paths[2:]) == ["/ConfirmIn", "/ConfirmOut"]
    confirm = [c for c in svc.calls_for(gid) if c["path"] == "/ConfirmOut"][0]
    assert confirm["q"]["op"] == "confirm" and confirm["q"]["trans_type"] == "tcc"
    assert confirm["q"]["branch_id"] == "01"
    assert json.loads(confirm["body"]) == {"amount": 30}
    assert ans["transaction"]["trans_type"] == "tcc"
    assert {(b["branch_id"], b["op"]) for b in ans["branches"]} == {
        ("01", "cancel"), ("01", "confirm"), ("02", "cancel"), ("02", "confirm")}


def test_tcc_cancel(dtm, svc):
    svc.answers["/TryIn"] = 409
    gid = gid_of(dtm)

    def body(t):
        t.call_branch({"amount": 30}, svc.url("/TryOut"), svc.url("/ConfirmOut"), svc.url("/CancelOut"))
        t.call_branch({"amount": 30}, svc.url("/TryIn"), svc.url("/ConfirmIn"), svc.url("/CancelIn"))

    assert tcc.tcc_global_transaction(dtm, gid, body) == ""
    wait_status(dtm, gid, "failed")
    paths = svc.paths(gid)
    assert paths[:2] == ["/TryOut", "/TryIn"]
    assert sorted(paths[2:]) == ["/CancelIn", "/CancelOut"]


def test_msg_prepare_and_submit(dtm, svc):
    gid = gid_of(dtm)
    m = msg.Msg(dtm, gid)
    m.add({"amount": 30}, svc.url("/MsgOut"))
    m.add({"amount": 30}, svc.url("/MsgIn"))
    m.prepare(svc.url("/QueryPrepared"))
    assert query(dtm, gid)["transaction"]["status"] == "prepared"
    m.submit()
    ans = wait_status(dtm, gid, "succeed")
    assert sorted(svc.paths(gid)) == ["/MsgIn", "/MsgOut"]
    call = [c for c in svc.calls_for(gid) if c["path"] == "/MsgIn"][0]
    assert call["q"] == {"gid": gid, "trans_type": "msg", "branch_id": "02", "op": "action"}
    assert [b["op"] for b in ans["branches"]] == ["action", "action"]


def test_msg_submit_without_prepare(dtm, svc):
    gid = gid_of(dtm)
    m = msg.Msg(dtm, gid)
    m.add({"n": 1}, svc.url("/Direct"))
    m.submit()
    wait_status(dtm, gid, "succeed")
    assert svc.paths(gid) == ["/Direct"]


def test_msg_recovered_through_query_prepared(dtm, svc):
    gid = gid_of(dtm)
    m = msg.Msg(dtm, gid)
    m.add({"n": 1}, svc.url("/Deliver"))
    m.trans_base.timeout_to_fail = 1  # ask the sender after 1 s instead of DTM's 35 s
    m.prepare(svc.url("/QueryPrepared"))
    # The sender "crashes" here: it never submits.
    wait_status(dtm, gid, "succeed", timeout=15)
    calls = svc.calls_for(gid)
    assert [c["path"] for c in calls] == ["/QueryPrepared", "/Deliver"]
    assert calls[0]["q"] == {"gid": gid, "trans_type": "msg", "branch_id": "00", "op": "msg"}


def test_msg_rolled_back_sender(dtm, svc):
    svc.answers["/QueryPrepared"] = 409
    gid = gid_of(dtm)
    m = msg.Msg(dtm, gid)
    m.add({"n": 1}, svc.url("/NeverDeliver"))
    m.trans_base.timeout_to_fail = 1
    m.prepare(svc.url("/QueryPrepared"))
    wait_status(dtm, gid, "failed", timeout=15)
    assert svc.paths(gid) == ["/QueryPrepared"]


def test_msg_abort_after_prepare(dtm, svc):
    gid = gid_of(dtm)
    m = msg.Msg(dtm, gid)
    m.add({"n": 1}, svc.url("/NeverDeliver"))
    m.prepare(svc.url("/QueryPrepared"))
    r = requests.post(dtm + "/abort", json={"gid": gid, "trans_type": "msg"}, timeout=5)
    assert r.status_code == 200, r.text
    assert query(dtm, gid)["transaction"]["status"] == "failed"
    assert svc.paths(gid) == []


def test_branch_headers_and_bad_input(dtm, svc):
    gid = gid_of(dtm)
    s = saga.Saga(dtm, gid)
    s.add({}, svc.url("/H"), svc.url("/HR"))
    s.trans_base.branch_headers = {"X-Tenant": "t1"}
    s.trans_base.wait_result = True
    s.submit()
    headers = {k.lower(): v for k, v in svc.calls_for(gid)[0]["headers"].items()}
    assert headers["x-tenant"] == "t1"
    assert "traceparent" in headers

    r = requests.post(dtm + "/submit", data=b"{not json", timeout=5)
    assert r.status_code == 400 and "message" in r.json()
    r = requests.post(dtm + "/submit", json={"gid": "g", "trans_type": "nope"}, timeout=5)
    assert r.status_code == 400 and "nope" in r.json()["message"]
    r = requests.post(dtm + "/submit", json={"gid": "", "trans_type": "saga"}, timeout=5)
    assert r.status_code == 400
    r = requests.post(dtm + "/submit", json={"gid": gid_of(dtm), "trans_type": "saga",
                                            "steps": [{"action": "ftp://x/a", "compensate": ""}],
                                            "payloads": ["{}"]}, timeout=5)
    assert r.status_code == 400 and "ftp" in r.json()["message"]
    assert requests.get(dtm.replace("/api/dtmsvr", "/api/ping"), timeout=5).json() == {"msg": "pong"}


def test_failing_compensation_parks_then_operator_retry(dtm, svc):
    # DTM would retry a compensation answering FAILURE forever; Tandem parks it.
    svc.answers["/P2"] = 409
    svc.answers["/PRevert1"] = 409
    gid = gid_of(dtm)
    s = saga.Saga(dtm, gid)
    s.add({}, svc.url("/P1"), svc.url("/PRevert1"))
    s.add({}, svc.url("/P2"), svc.url("/PRevert2"))
    s.submit()
    deadline = time.time() + 10
    while time.time() < deadline and not query(dtm, gid)["transaction"].get("parked"):
        time.sleep(0.05)
    t = query(dtm, gid)["transaction"]
    assert t["status"] == "aborting" and "FAILURE" in t["parked"], t
    svc.answers["/PRevert1"] = 200
    r = requests.post(dtm + "/resetNextCronTime", json={"gid": gid}, timeout=5)
    assert r.status_code == 200, r.text
    wait_status(dtm, gid, "failed")
    assert svc.paths(gid) == ["/P1", "/P2", "/PRevert2", "/PRevert1", "/PRevert1"]


def test_xa_branches_committed_and_rolled_back_by_op(dtm, svc):
    for outcome, status in (("submit", "succeed"), ("abort", "failed")):
        gid = gid_of(dtm)
        body = {"gid": gid, "trans_type": "xa"}
        assert requests.post(dtm + "/prepare", json=body, timeout=5).status_code == 200
        for bid in ("01", "02"):
            reg = {"gid": gid, "trans_type": "xa", "branch_id": bid, "url": svc.url("/xa")}
            r = requests.post(dtm + "/registerBranch", json=reg, timeout=5)
            assert r.status_code == 200, r.text
        r = requests.post(dtm + "/" + outcome, json={**body, "wait_result": True}, timeout=10)
        assert r.status_code == 200, r.text
        wait_status(dtm, gid, status)
        calls = svc.calls_for(gid)
        op = "commit" if outcome == "submit" else "rollback"
        assert sorted(c["q"]["branch_id"] for c in calls) == ["01", "02"]
        assert all(c["method"] == "POST" and c["q"]["op"] == op and c["q"]["trans_type"] == "xa"
                   for c in calls), calls
        assert query(dtm, gid)["transaction"]["trans_type"] == "xa"


def test_msg_query_prepared_ongoing_is_asked_again(dtm, svc):
    seen = []

    def answer(q):
        seen.append(q)
        return 425 if len(seen) == 1 else 200

    svc.answers["/QP"] = answer
    gid = gid_of(dtm)
    m = msg.Msg(dtm, gid)
    m.add({"n": 1}, svc.url("/Later"))
    m.trans_base.timeout_to_fail = 1
    m.trans_base.retry_interval = 1
    m.prepare(svc.url("/QP"))
    wait_status(dtm, gid, "succeed", timeout=15)
    assert svc.paths(gid) == ["/QP", "/QP", "/Later"]


def test_saga_timeout_to_fail_rolls_back(dtm, svc):
    svc.answers["/Slow"] = 425  # ONGOING, forever
    gid = gid_of(dtm)
    s = saga.Saga(dtm, gid)
    s.add({}, svc.url("/Fast"), svc.url("/FastRevert"))
    s.add({}, svc.url("/Slow"), svc.url("/SlowRevert"))
    s.trans_base.timeout_to_fail = 1
    s.trans_base.retry_interval = 1
    s.submit()
    ans = wait_status(dtm, gid, "failed", timeout=15)
    paths = svc.paths(gid)
    assert paths[0] == "/Fast" and set(paths[1:-2]) == {"/Slow"}
    assert paths[-2:] == ["/SlowRevert", "/FastRevert"]
    assert "timeout" in ans["transaction"]["rollback_reason"]
