# Shared by the CLI test scripts (source it after setting $tmp): pass/fail counters and
# expect_error, which holds a command to the error contract of the CLI: exit code 2, nothing on
# stdout, one line on stderr containing the expected words.
fails=0 passes=0
fail() { echo "FAIL $1"; fails=$((fails + 1)); }
pass() { passes=$((passes + 1)); }

expect_error() {  # expect_error "what" "needle in message" cmd...
  local what=$1 needle=$2
  shift 2
  local out err code
  out=$("$@" 2>"$tmp/err")
  code=$?
  err=$(cat "$tmp/err")
  if [[ $code -ne 2 ]]; then fail "$what: exit code $code (want 2); stderr: $err"; return; fi
  if [[ -n $out ]]; then fail "$what: stdout should be empty, got: $out"; return; fi
  if [[ $(printf '%s\n' "$err" | wc -l) -ne 1 || $err != *"$needle"* ]]; then
    fail "$what: stderr should be one line containing '$needle', got: $err"; return
  fi
  pass
}
