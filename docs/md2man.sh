#!/bin/sh
# md2man.sh LOWDOWN IN.md OUT TITLE SECTION SOURCE
#
# Renders one page of docs/ as a man page, so the markdown stays the only
# source.  The markdown is written for a browser; a terminal needs three
# changes, made here before lowdown sees it:
#   - the "# title(N)" first line goes (.TH carries it) and "## Heading"
#     becomes a section (.SH, upper case, as man(7) expects);
#   - the "## Name" paragraph loses its code marks and its em dash becomes
#     " - ", the form lexgrog and apropos parse;
#   - tables become definition lists: tbl cannot fit three or four columns
#     of long code strings into 80 terminal columns without warnings.
# Prose is left-aligned (.ad l): justified text in an 80-column terminal
# spreads words across long unbreakable code spans.  Characters the ASCII
# device (a C locale) has no glyph for get a fallback.
set -eu
lowdown=$1 in=$2 out=$3 title=$4 section=$5 source=$6

awk '
function cells(line, out,    n, i, parts) {
        gsub(/\\\|/, "\001", line)
        sub(/^[ \t]*\|/, "", line)
        sub(/\|[ \t]*$/, "", line)
        n = split(line, parts, "|")
        for (i = 1; i <= n; i++) {
                gsub(/\001/, "\\|", parts[i])
                sub(/^[ \t]+/, "", parts[i])
                sub(/[ \t]+$/, "", parts[i])
                out[i] = parts[i]
        }
        return n
}
NR == 1 && /^# / { next }
/^```/ { fence = !fence }
!fence && /^## / {
        in_name = ($0 ~ /^## Name[ \t]*$/)
        print "## " toupper(substr($0, 4))
        next
}
in_name && NF { gsub(/`/, ""); sub(/ — /, " - ") }
!fence && !table && /^\|/ { header = $0; getline sep
        if (sep ~ /^\|[ \t:|-]+$/) {
                table = 1
                ncol = cells(header, head)
                next
        }
        print header; $0 = sep
}
table && !/^\|/ { table = 0 }
table {
        n = cells($0, c)
        print ""
        print c[1]
        for (i = 2; i <= n; i++) {
                if (c[i] == "")
                        continue
                if (ncol > 2 && head[i] != "")
                        print ": *" head[i] ":* " c[i]
                else
                        print ": " c[i]
        }
        print ""
        next
}
{ print }
' "$in" |
"$lowdown" -s -Tman --nroff-nolinks -M "title=$title" -M "section=$section" -M "source=$source" \
        -M shiftheadinglevelby=-1 - |
awk '/^\.TH / { print; print ".ad l"; print ".if !c\\[u2026] .char \\[u2026] ..."; next } { print }' >"$out.tmp"
mv "$out.tmp" "$out"
