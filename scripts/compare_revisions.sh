#!/usr/bin/env bash
# The demo and every command on the demo data at two commits, and their outputs compared.
#
#   bash scripts/compare_revisions.sh BEFORE_REV AFTER_REV [WORK_DIR]
#
# Each commit's src/ is unpacked under WORK_DIR (default: a temporary folder) and run with
# this checkout's virtualenv (PYTHONPATH first): `covgap demo`, then `classify` (with the
# demo's run file as --config and an aggregate), `plan` (default settings; phases, a sweep,
# the priority list), `map` and `report`. The tables are compared by scripts/compare_outputs.py, the
# classified GeoPackage by value and geometry, and the HTML pages once folium's random
# element ids are taken out. Timings are printed per step (wall and user seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=$REPO/.venv/bin/python
COVGAP=$REPO/.venv/bin/covgap
BEFORE=${1:?give BEFORE_REV AFTER_REV}
AFTER=${2:?give BEFORE_REV AFTER_REV}
WORK=${3:-$(mktemp -d)}
CFG=src/coverage/datasets/demo.toml
mkdir -p "$WORK"
for side in before after; do
  rev=$([ $side = before ] && echo "$BEFORE" || echo "$AFTER")
  mkdir -p "$WORK/$side/src"
  git archive "$rev" src | tar -x -C "$WORK/$side"
done
get() { "$PY" -c "from coverage.datasets import demo_paths; print(demo_paths()['$1'])"; }
TOWERS="--towers $(get sites) --towers $(get opencellid)"
RASTERS="--population $(get population) --dem $(get dem) --landcover $(get landcover)"
for side in before after; do
  out=$WORK/$side
  export PYTHONPATH=$out/src
  /usr/bin/time -f "$side demo: %e s wall, %U s user" \
    "$COVGAP" -q demo -o "$out/demo" --map "$out/demo.html" --overwrite
  /usr/bin/time -f "$side classify: %e s wall, %U s user" \
    "$COVGAP" -q classify "$(get villages)" $TOWERS --measurements "$(get tests)" \
    --measurements "$(get ookla)" $RASTERS --access "$(get access)" --fibre "$(get fibre)" \
    --config $CFG -o "$out/cmd/classified.gpkg" --aggregate-out "$out/cmd/aggregate.csv" \
    --overwrite
  /usr/bin/time -f "$side plan: %e s wall, %U s user" \
    "$COVGAP" -q plan "$out/cmd/classified.gpkg" $TOWERS \
    --measurements "$(get tests)" $RASTERS --access "$(get access)" --fibre "$(get fibre)" \
    --roads "$(get roads)" --phases 2026=15bn,2027=25bn --sweep 10bn,20bn,40bn \
    -o "$out/cmd/plan.csv" --villages-out "$out/cmd/priority.csv" --overwrite
  "$COVGAP" -q map "$out/cmd/classified.gpkg" --plan "$out/cmd/plan.csv" \
    -o "$out/cmd/map.html" --overwrite
  "$COVGAP" -q report "$out/cmd/classified.gpkg" --plan "$out/cmd/plan.csv" \
    --priority "$out/cmd/priority.csv" -o "$out/cmd/report.html" --overwrite
done
unset PYTHONPATH
status=0
"$PY" scripts/compare_outputs.py "$WORK/before" "$WORK/after" || status=1
"$PY" - "$WORK" <<'EOF' || status=1
import sys
import geopandas as gpd
import pandas as pd
work = sys.argv[1]
a, b = (gpd.read_file(f"{work}/{s}/cmd/classified.gpkg") for s in ("before", "after"))
pd.testing.assert_frame_equal(pd.DataFrame(a.drop(columns="geometry")),
                              pd.DataFrame(b.drop(columns="geometry")))
assert a.geometry.geom_equals(b.geometry).all()
print(f"cmd/classified.gpkg: same ({len(a)} rows)")
EOF
for page in demo.html cmd/map.html cmd/report.html; do
  if cmp -s <(sed -E 's/[0-9a-f]{32}//g' "$WORK/before/$page") \
            <(sed -E 's/[0-9a-f]{32}//g' "$WORK/after/$page"); then
    echo "$page: same (folium's random ids aside)"
  else
    echo "$page: DIFFERENT"; status=1
  fi
done
exit $status
