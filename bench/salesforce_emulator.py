"""Benchmark: the Salesforce emulator's own speed, so sink benchmarks know its ceiling.

Measures through the real client stack (requests over HTTPS, keep-alive): single-record upsert
latency (p50/p99), sObject Collections upsert throughput with 200-record calls, and Bulk API 2.0
upsert job throughput (create, upload, close, poll to JobComplete).

    just bench-sfemu            # or: .venv/bin/python bench/salesforce_emulator.py --records 20000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from cdc_bridge.testing.salesforce import SalesforceEmulator, emulator_session


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--singles", type=int, default=500, help="single upserts to time")
    ap.add_argument("--records", type=int, default=20000, help="records for collections and bulk")
    args = ap.parse_args()
    with SalesforceEmulator(daily_limit=10**9, bulk_delay=0.01) as emu:
        session = emulator_session(emu)
        token = emu.session_token()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        base = f"{emu.url}/services/data/v{emu.api_version}"

        latencies = []
        for i in range(args.singles):
            t0 = time.perf_counter()
            r = session.patch(
                f"{base}/sobjects/Account/External_Id__c/s{i}",
                headers=headers,
                data=json.dumps({"Name": f"Single {i}", "NumberOfEmployees": i}),
            )
            latencies.append(time.perf_counter() - t0)
            assert r.status_code == 201, r.text
        latencies.sort()

        t0 = time.perf_counter()
        done = 0
        while done < args.records:
            batch = [
                {
                    "attributes": {"type": "Account"},
                    "External_Id__c": f"c{done + j}",
                    "Name": f"Coll {done + j}",
                    "Phone": "555-0100",
                    "Industry": "Technology",
                }
                for j in range(200)
            ]
            r = session.patch(
                f"{base}/composite/sobjects/Account/External_Id__c",
                headers=headers,
                data=json.dumps({"allOrNone": False, "records": batch}),
            )
            assert r.status_code == 200 and all(x["success"] for x in r.json()), r.text[:300]
            done += 200
        coll_s = time.perf_counter() - t0

        lines = ["External_Id__c,Name,Phone,Industry"] + [
            f"b{i},Bulk {i},555-0100,Technology" for i in range(args.records)
        ]
        t0 = time.perf_counter()
        job = session.post(
            f"{base}/jobs/ingest",
            headers=headers,
            data=json.dumps(
                {
                    "object": "Account",
                    "operation": "upsert",
                    "externalIdFieldName": "External_Id__c",
                    "contentType": "CSV",
                    "lineEnding": "LF",
                }
            ),
        ).json()
        session.put(
            f"{base}/jobs/ingest/{job['id']}/batches",
            headers={**headers, "Content-Type": "text/csv"},
            data=("\n".join(lines) + "\n").encode(),
        )
        session.patch(
            f"{base}/jobs/ingest/{job['id']}",
            headers=headers,
            data=json.dumps({"state": "UploadComplete"}),
        )
        while True:
            info = session.get(f"{base}/jobs/ingest/{job['id']}", headers=headers).json()
            if info["state"] in ("JobComplete", "Failed", "Aborted"):
                break
            time.sleep(0.02)
        bulk_s = time.perf_counter() - t0
        assert info["state"] == "JobComplete" and info["numberRecordsFailed"] == 0, info

    result = {
        "bench": "salesforce_emulator",
        "single_upsert_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "single_upsert_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "collections_records_per_s": round(args.records / coll_s),
        "collections_calls_per_s": round(args.records / 200 / coll_s, 1),
        "bulk_records_per_s": round(args.records / bulk_s),
        "records": args.records,
    }
    print(json.dumps(result))
    print(
        f"single upsert p50 {result['single_upsert_p50_ms']} ms (p99 {result['single_upsert_p99_ms']} ms); "
        f"collections {result['collections_records_per_s']} records/s in 200-record calls; "
        f"bulk 2.0 {result['bulk_records_per_s']} records/s for {args.records} records"
    )


if __name__ == "__main__":
    main()
