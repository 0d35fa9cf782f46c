#!/usr/bin/env bash
# Vendor the report's JavaScript libraries from the npm registry into
# genesys_dsl/report/assets/ (committed: installing or running genesys-dsl needs
# neither npm nor the network). Rerun after changing a version below; review the
# diff of assets/VENDORED.md (versions, licences, sha256 of what was copied).
set -euo pipefail

UPLOT_VERSION=1.6.32        # fitness-over-time chart (MIT)
DAGRE_VERSION=3.1.3         # layered layout of the lineage graph (MIT; bundles @dagrejs/graphlib)

cd "$(dirname "$0")/.."
ASSETS=genesys_dsl/report/assets
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

(cd "$WORK" && npm pack --silent "uplot@$UPLOT_VERSION" "@dagrejs/dagre@$DAGRE_VERSION" >/dev/null)
mkdir -p "$WORK/uplot" "$WORK/dagre"
tar xzf "$WORK/uplot-$UPLOT_VERSION.tgz" -C "$WORK/uplot"
tar xzf "$WORK/dagrejs-dagre-$DAGRE_VERSION.tgz" -C "$WORK/dagre"

# the source-map comment points at a file we do not ship; drop it so browsers do not ask for it
copy_js() { sed '/^\/\/# sourceMappingURL=/d' "$1" > "$2"; }
copy_js "$WORK/uplot/package/dist/uPlot.iife.min.js" "$ASSETS/uPlot.iife.min.js"
cp "$WORK/uplot/package/dist/uPlot.min.css" "$ASSETS/uPlot.min.css"
copy_js "$WORK/dagre/package/dist/dagre.min.js" "$ASSETS/dagre.min.js"
cp "$WORK/uplot/package/LICENSE" "$ASSETS/LICENSE-uPlot.txt"
cp "$WORK/dagre/package/LICENSE" "$ASSETS/LICENSE-dagre.txt"

{
    echo "# Vendored assets"
    echo
    echo "Written by scripts/vendor_report_assets.sh from the npm registry; do not edit by hand."
    echo
    echo "| file | package | version | licence | sha256 |"
    echo "|---|---|---|---|---|"
    for entry in "uPlot.iife.min.js uplot $UPLOT_VERSION" "uPlot.min.css uplot $UPLOT_VERSION" \
                 "dagre.min.js @dagrejs/dagre $DAGRE_VERSION"; do
        set -- $entry
        licence=$(node -p "require('$WORK/${2#@dagrejs/}/package/package.json').license" 2>/dev/null || echo MIT)
        echo "| $1 | $2 | $3 | $licence | $(sha256sum "$ASSETS/$1" | cut -d' ' -f1) |"
    done
} > "$ASSETS/VENDORED.md"
echo "vendored uplot $UPLOT_VERSION and @dagrejs/dagre $DAGRE_VERSION into $ASSETS"
