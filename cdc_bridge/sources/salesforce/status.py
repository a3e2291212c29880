"""``cdc-bridge status`` for a salesforce source: the saved replay ids and how close the last
seen commit is to the end of Salesforce's 72-hour event retention; and ``check --connect``'s
replay position report, which also asks the Pub/Sub API whether it can resume there."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from cdc_bridge.status import AT_RISK, INACTIVE, LAGGING, LOST, OK, SourceStatus

__all__ = ["RETENTION_S", "probe", "replay_report"]

RETENTION_S = 72 * 3600


def probe(cfg: Any, offset: Mapping[str, Any] | None, warn_bytes: int) -> SourceStatus:
    """Offline: judged from the saved offset (replay ids are opaque; commit times are not)."""
    st = SourceStatus(cfg.name, "salesforce")
    if not offset:
        st.snapshot = "not started"
        st.state = INACTIVE
        st.detail = "no saved position (the source has not run yet)"
        return st
    st.snapshot = "running" if offset.get("snapshot") else "done"
    replay = offset.get("replay") or {}
    st.saved_position = st.position = (
        ", ".join(f"{ch}@{rid}" for ch, rid in sorted(replay.items())) or "latest (no replay ids)"
    )
    commits = [int(v) for v in (offset.get("commit_ms") or {}).values()]
    if not commits:
        st.state = OK
        return st
    oldest = min(commits) / 1000
    age = max(0.0, time.time() - max(commits) / 1000)
    st.lag_seconds = round(age, 1)
    st.state = LAGGING if age > 60 else OK
    st.detail = f"last change seen {age:,.0f} s ago"
    if time.time() - oldest > RETENTION_S:
        st.state = LOST
        st.risk = (
            "the saved replay ids are older than Salesforce's 72-hour retention: the next start "
            "applies on_position_lost"
        )
    elif time.time() - oldest > RETENTION_S * 0.8:
        st.state = AT_RISK
        st.risk = "the saved replay ids are close to the end of the 72-hour retention window"
    return st


#: How long ``check --connect`` waits for the Pub/Sub API's answer to a resume probe.
PROBE_WAIT_S = 1.5


def _age(ms: int | None, now: float) -> str:
    if ms is None:
        return "no commit time known"
    hours = max(0.0, now - ms / 1000) / 3600
    return f"last commit {hours:,.1f} h ago"


def replay_report(
    source: Any, offset: Mapping[str, Any] | None, wait_s: float = PROBE_WAIT_S
) -> tuple[list[str], bool]:
    """``check --connect``: for every channel of a connected ``SalesforceSource``, the stored
    replay id, whether it is within the 72-hour retention as far as the saved commit times
    tell, and what the Pub/Sub API answers to a Subscribe at that replay id (one event
    requested; the stream is cancelled after its first answer or ``wait_s`` seconds).

    Returns (lines, lost): ``lost`` when the server refused a stored replay id.
    """
    from cdc_bridge.sources.salesforce.pubsub import PubSubError

    now = time.time()
    replay = dict((offset or {}).get("replay") or {})
    commits = {k: int(v) for k, v in ((offset or {}).get("commit_ms") or {}).items()}
    lines: list[str] = []
    lost = False
    for channel, obj in source.channels.items():
        rid = replay.get(channel)
        if rid is None:
            lines.append(f"{channel}: no stored replay id (subscribes at LATEST)")
            continue
        commit = commits.get(obj) if obj else None
        if commit is None:
            window = "retention unknown"
        elif now - commit / 1000 > RETENTION_S:
            window = "outside the 72-hour retention"
        else:
            window = "within the 72-hour retention"
        try:
            answer = _probe(source.pubsub, channel, bytes.fromhex(rid), wait_s)
        except PubSubError as exc:
            if exc.replay_lost:
                lost = True
                answer = f"Salesforce refuses it ({exc.details})"
            else:
                answer = f"probe failed ({exc.details})"
        lines.append(f"{channel}: replay id {rid}, {window} ({_age(commit, now)}); {answer}")
    return lines, lost


def _probe(client: Any, channel: str, replay_id: bytes, wait_s: float) -> str:
    """Subscribe at ``replay_id`` and wait for the first answer (or an error)."""
    import threading

    from cdc_bridge.sources.salesforce.pubsub import ReplayPreset

    sub = client.subscribe(channel, preset=ReplayPreset.CUSTOM, replay_id=replay_id, batch_size=1)
    got: list[Any] = []
    done = threading.Event()

    def first() -> None:
        try:
            for response in sub:
                got.append(response)
                break
        except BaseException as exc:
            got.append(exc)
        finally:
            done.set()

    t = threading.Thread(target=first, name=f"replay-probe {channel}", daemon=True)
    t.start()
    done.wait(wait_s)
    sub.close()
    t.join(5)
    if got and isinstance(got[0], BaseException):
        raise got[0]
    if got and got[0].events:
        return "Salesforce resumes there (newer events waiting)"
    return "Salesforce accepts it (no newer events)"
