"""Every write of the Salesforce sink carries Sforce-Call-Options: client=<id>, which the
emulator (like Salesforce) copies into changeOrigin of the change events: how a Salesforce
source recognises the bridge's own writes."""

from __future__ import annotations

from cdc_bridge.sources.salesforce.pubsub import EventDecoder
from cdc_bridge.testing.salesforce import SalesforceEmulator
from tests.sinks.salesforce.sf_sink_helpers import CUSTOMERS, ev, make_sink, to_records


def _origins(emu: SalesforceEmulator) -> list[tuple[str, str]]:
    dec = EventDecoder(lambda sid: emu.bus.schema_json(sid) or "")
    out = []
    for e in emu.bus.events("/data/AccountChangeEvent"):
        h = dec.decode(e.schema_id, e.payload, b"", e.event_id).header
        assert h is not None
        out.append((h.change_type, h.change_origin))
    return out


def test_collections_and_bulk_writes_carry_the_client_id() -> None:
    with SalesforceEmulator(bulk_delay=0.02) as emu:
        sink = make_sink(emu, {"call_options_client": "bridge-a"})
        rows = [{"id": i, "name": f"C{i}", "city": "Gent", "employees": i} for i in range(3)]
        assert sink.apply(to_records([ev(CUSTOMERS, "c", r) for r in rows])).ok
        sink.close()
        bulk = make_sink(emu, mode="bulk")
        more = [{"id": i, "name": f"B{i}", "city": "Gent", "employees": i} for i in range(3, 6)]
        assert bulk.apply(to_records([ev(CUSTOMERS, "c", r) for r in more])).ok
        bulk.close()
        origins = _origins(emu)
        assert len(origins) == 6 and all(t == "CREATE" for t, _ in origins)
        assert all(o.endswith(";client=bridge-a") for _, o in origins[:3]), origins
        assert all(o.endswith(";client=cdc-bridge") for _, o in origins[3:]), origins
        assert all("/bulk/" in o for _, o in origins[3:])  # the Bulk API 2.0 path
