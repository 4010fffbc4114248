#!/usr/bin/env bash
# Turns a bench.sh results.tsv into Markdown tables: one per scenario, one
# column per backend (label). Figures named "... samples" and "... max" are
# left out unless ALL=1.
#
#   load/tsv2md.sh target/bench-results/<run>/results.tsv
set -euo pipefail
file=${1:?usage: load/tsv2md.sh results.tsv}
awk -F'\t' -v all="${ALL:-}" '
    $1 == "reference" {
        if (!nref++) printf "| reference | figure | value |\n|---|---|---:|\n"
        printf "| %s | %s | %s %s |\n", $2, $3, $4, $5
        next
    }
    $3 == "note" { notes[$2] = notes[$2] "\n- " $1 ": " $7; next }
    {
        if (!all && ($3 ~ / samples$/ || $3 ~ / max$/)) next
        label = $1; sc = $2; fig = $3
        if (!(label in seen_label)) { seen_label[label] = 1; labels[++nl] = label }
        if (!(sc in seen_sc)) { seen_sc[sc] = 1; scs[++ns] = sc }
        k = sc SUBSEP fig
        if (!(k in seen_fig)) { seen_fig[k] = 1; figs[sc, ++nf[sc]] = fig; unit[k] = $5 }
        v = $4
        if ($6 != "") v = v " (" sprintf("%.2f", $6) "x)"
        val[k, label] = v
    }
    END {
        for (i = 1; i <= ns; i++) {
            sc = scs[i]
            printf "\n### %s\n\n| figure | unit |", sc
            for (j = 1; j <= nl; j++) printf " %s |", labels[j]
            printf "\n|---|---|"
            for (j = 1; j <= nl; j++) printf "---:|"
            printf "\n"
            for (f = 1; f <= nf[sc]; f++) {
                fig = figs[sc, f]; k = sc SUBSEP fig
                printf "| %s | %s |", fig, unit[k]
                for (j = 1; j <= nl; j++) printf " %s |", ((k, labels[j]) in val) ? val[k, labels[j]] : ""
                printf "\n"
            }
            if (sc in notes) printf "%s\n", notes[sc]
        }
    }
' "$file"
