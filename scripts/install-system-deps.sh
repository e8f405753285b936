#!/usr/bin/env bash
# System packages the test suite and charts use (Debian): headless Chromium for the web UI
# browser test, and a CJK font (fonts-noto-cjk) so charts label subjects in Chinese.
# Each is skipped when already present; without root or apt-get, say what is missing and go on.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium chromium-driver)
find /usr/share/fonts -iname "*cjk*" -print -quit 2>/dev/null | grep -q . || missing+=(fonts-noto-cjk)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: cannot apt-get install ${missing[*]}: the web UI browser test fails without chromium," \
       "and charts label subjects with ASCII keys without a CJK font" >&2
  exit 0
fi
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
