#!/bin/sh
# Writes the King James Bible as plain text, one verse per line, references
# stripped, a blank line between chapters (Debian packages bible-kjv, bible-kjv-text).
# Usage: sh prepare_text.sh [DATA_DIR]   (default /tmp/tiny-lm-data)
set -eu
OUT=${1:-/tmp/tiny-lm-data}
mkdir -p "$OUT"
# `bible -f` prints "Ge1:1 In the beginning ..." : reference, one space, verse.
bible -f "Gen1:1-Rev22:21" > "$OUT/raw.txt"
awk '{
  ref = $1; sub(/^[^ ]+ /, "");            # strip the reference
  gsub(/  +/, " "); sub(/ +$/, "");        # 3 verses have a double or trailing space
  split(ref, a, ":"); ch = a[1];           # "Ge1" = book + chapter
  if (NR > 1 && ch != prev) print "";      # blank line between chapters
  print; prev = ch
}' "$OUT/raw.txt" > "$OUT/kjv.txt"
echo "verses: $(grep -c . "$OUT/kjv.txt")  chapters: $(( $(grep -c '^$' "$OUT/kjv.txt") + 1 ))  bytes: $(wc -c < "$OUT/kjv.txt")"
