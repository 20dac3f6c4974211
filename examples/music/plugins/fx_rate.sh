#!/bin/sh
# A function plug-in for `yak ask`: reads the request JSON on stdin and answers with JSON on
# stdout. This demo answers from a fixed table of reference rates (a real one would call a
# rates service); it shows the protocol, not live data.
cat >/dev/null
cat <<'JSON'
{"text": "Reference exchange rates used in revenue reports (fixed for the demo): 1 USD = 7.10 CNY, 1 EUR = 7.70 CNY, 1 HKD = 0.91 CNY.",
 "columns": ["currency", "cny"],
 "rows": [["USD", 7.10], ["EUR", 7.70], ["HKD", 0.91]]}
JSON
