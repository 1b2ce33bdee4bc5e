#!/usr/bin/env python3
"""TPC-H Q1 Q3 Q5 Q6 Q10 Q12 Q14 Q18 in DuckDB (the queries' standard SQL)
over the parquet files that `cargo run --release --example tpch -- gen`
wrote, to produce reference answers and to time DuckDB against mars-rs on
the same files.

    # the answers tests/tpch.rs checks against (SF 0.01):
    cargo run --release --example tpch -- gen --sf 0.01 --dir /tmp/tpch-sf0.01
    .venv/bin/python bench/tpch.py answers --dir /tmp/tpch-sf0.01 --out tests/tpch_answers/sf0.01.json

    # the benchmark (SF 1): mars-rs, then DuckDB, answers compared
    cargo run --release --example tpch -- gen --sf 1 --dir /tmp/tpch-sf1
    .venv/bin/python bench/tpch.py bench --dir /tmp/tpch-sf1 [--repeats 3] [--rounds 3] [--threads 2]

`bench` runs the mars-rs example (`run --answers`), then each query in
DuckDB (best of --repeats after a warm-up, views over the parquet files, so
both read the files every time), checks that the two answers agree (numbers
to a relative 1e-9) and prints one table with the ratio per query. With
--rounds N the two alternate N times and each keeps its best time per query
(on a shared machine whose speed drifts, both see the same drift).
"""
import argparse
import datetime
import decimal
import json
import os
import subprocess
import sys
import time

import duckdb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLES = ["lineitem", "orders", "customer", "part", "supplier", "nation", "region"]

# TPC-H's SQL with the validation parameters; Q10 and Q18 order ties by key,
# as the mars-rs versions do, so both answers are one order.
QUERIES = {
    "q1": """
select l_returnflag, l_linestatus, sum(l_quantity) as sum_qty,
  sum(l_extendedprice) as sum_base_price,
  sum(l_extendedprice * (1 - l_discount)) as sum_disc_price,
  sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) as sum_charge,
  avg(l_quantity) as avg_qty, avg(l_extendedprice) as avg_price,
  avg(l_discount) as avg_disc, count(*) as count_order
from lineitem
where l_shipdate <= date '1998-12-01' - interval '90' day
group by l_returnflag, l_linestatus
order by l_returnflag, l_linestatus""",
    "q3": """
select l_orderkey, sum(l_extendedprice * (1 - l_discount)) as revenue,
  o_orderdate, o_shippriority
from customer, orders, lineitem
where c_mktsegment = 'BUILDING' and c_custkey = o_custkey
  and l_orderkey = o_orderkey and o_orderdate < date '1995-03-15'
  and l_shipdate > date '1995-03-15'
group by l_orderkey, o_orderdate, o_shippriority
order by revenue desc, o_orderdate
limit 10""",
    "q5": """
select n_name, sum(l_extendedprice * (1 - l_discount)) as revenue
from customer, orders, lineitem, supplier, nation, region
where c_custkey = o_custkey and l_orderkey = o_orderkey
  and l_suppkey = s_suppkey and c_nationkey = s_nationkey
  and s_nationkey = n_nationkey and n_regionkey = r_regionkey
  and r_name = 'ASIA' and o_orderdate >= date '1994-01-01'
  and o_orderdate < date '1994-01-01' + interval '1' year
group by n_name
order by revenue desc""",
    "q6": """
select sum(l_extendedprice * l_discount) as revenue
from lineitem
where l_shipdate >= date '1994-01-01'
  and l_shipdate < date '1994-01-01' + interval '1' year
  and l_discount between 0.06 - 0.01 and 0.06 + 0.01
  and l_quantity < 24""",
    "q10": """
select c_custkey, c_name, sum(l_extendedprice * (1 - l_discount)) as revenue,
  c_acctbal, n_name, c_address, c_phone, c_comment
from customer, orders, lineitem, nation
where c_custkey = o_custkey and l_orderkey = o_orderkey
  and o_orderdate >= date '1993-10-01'
  and o_orderdate < date '1993-10-01' + interval '3' month
  and l_returnflag = 'R' and c_nationkey = n_nationkey
group by c_custkey, c_name, c_acctbal, c_phone, n_name, c_address, c_comment
order by revenue desc, c_custkey
limit 20""",
    "q12": """
select l_shipmode,
  sum(case when o_orderpriority = '1-URGENT' or o_orderpriority = '2-HIGH'
      then 1 else 0 end) as high_line_count,
  sum(case when o_orderpriority <> '1-URGENT' and o_orderpriority <> '2-HIGH'
      then 1 else 0 end) as low_line_count
from orders, lineitem
where o_orderkey = l_orderkey and l_shipmode in ('MAIL', 'SHIP')
  and l_commitdate < l_receiptdate and l_shipdate < l_commitdate
  and l_receiptdate >= date '1994-01-01'
  and l_receiptdate < date '1994-01-01' + interval '1' year
group by l_shipmode
order by l_shipmode""",
    "q14": """
select 100.00 * sum(case when p_type like 'PROMO%'
    then l_extendedprice * (1 - l_discount) else 0 end)
  / sum(l_extendedprice * (1 - l_discount)) as promo_revenue
from lineitem, part
where l_partkey = p_partkey and l_shipdate >= date '1995-09-01'
  and l_shipdate < date '1995-09-01' + interval '1' month""",
    "q18": """
select c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice, sum(l_quantity) as sum_qty
from customer, orders, lineitem
where o_orderkey in (select l_orderkey from lineitem group by l_orderkey
                     having sum(l_quantity) > 300)
  and c_custkey = o_custkey and o_orderkey = l_orderkey
group by c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice
order by o_totalprice desc, o_orderdate, o_orderkey
limit 100""",
}


def connect(d, threads):
    con = duckdb.connect()
    if threads:
        con.execute(f"set threads = {threads}")
    for t in TABLES:
        path = os.path.join(d, f"{t}.parquet")
        con.execute(f"create view {t} as select * from read_parquet('{path}')")
    return con


def cell(v):
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    return v


def answer(con, q):
    cur = con.execute(QUERIES[q])
    columns = [c[0] for c in cur.description]
    return {"columns": columns, "rows": [[cell(v) for v in r] for r in cur.fetchall()]}


def same(a, b):
    """Where answers a and b first differ, or None."""
    if len(a["rows"]) != len(b["rows"]):
        return f"{len(a['rows'])} rows vs {len(b['rows'])}"
    for i, (ra, rb) in enumerate(zip(a["rows"], b["rows"])):
        for j, (x, y) in enumerate(zip(ra, rb)):
            if isinstance(x, (int, float)) and isinstance(y, (int, float)):
                if abs(x - y) > 1e-9 * max(abs(x), abs(y), 1.0):
                    return f"row {i} column {j}: {x} vs {y}"
            elif x != y:
                return f"row {i} column {j}: {x!r} vs {y!r}"
    return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["answers", "bench"])
    p.add_argument("--dir", required=True)
    p.add_argument("--out", help="answers: the JSON file to write")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1, help="bench: alternate mars-rs and DuckDB this many times")
    p.add_argument("--threads", type=int, default=0, help="DuckDB threads (default: all cores)")
    a = p.parse_args()
    con = connect(a.dir, a.threads)
    if a.mode == "answers":
        out = {q: answer(con, q) for q in QUERIES}
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        print(f"{len(out)} answers -> {a.out}")
        return

    target = os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"))
    exe = os.path.join(target, "release", "examples", "tpch")
    if not os.path.exists(exe):
        subprocess.run(["cargo", "build", "--release", "--example", "tpch"], cwd=ROOT, check=True)
    mars_json = os.path.join(a.dir, "mars_answers.json")
    # rounds alternate the two systems, so a machine that slows down for a
    # while slows both; each query's time is its best over every round
    mars_best, duck_best, wants, mars = {}, {}, {}, {}
    for _ in range(max(1, a.rounds)):
        subprocess.run([exe, "run", "--dir", a.dir, "--repeat", str(a.repeats), "--answers", mars_json], check=True)
        with open(mars_json) as f:
            mars = json.load(f)
        for q in QUERIES:
            mars_best[q] = min(mars_best.get(q, float("inf")), mars[q]["seconds"])
            answer(con, q)  # warm-up
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                wants[q] = answer(con, q)
                duck_best[q] = min(duck_best.get(q, float("inf")), time.perf_counter() - t0)
    print(f"\n{'query':<6} {'mars-rs s':>10} {'DuckDB s':>10} {'DuckDB/mars':>12}  answers")
    bad = 0
    for q in QUERIES:
        diff = same(mars[q], wants[q])
        bad += diff is not None
        m, best = mars_best[q], duck_best[q]
        print(f"{q:<6} {m:>10.3f} {best:>10.3f} {best / m:>12.2f}  {'agree' if diff is None else 'DIFFER: ' + diff}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
