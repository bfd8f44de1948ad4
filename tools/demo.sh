#!/bin/sh
# `make demo`: provisions a demo tenant in an embedded SQLite database, renders its
# FreeSWITCH configuration into a folder, and prints what it made. Safe to run again.
set -eu
out=${1:-demo-out}
fsctl=${FSCTL:-.venv/bin/fsctl}
rm -rf "$out"
mkdir -p "$out"
export FSCTL_CONFIG=""
export FSCTL_DATABASE="sqlite:///$out/fsctl.db"
export FSCTL_MEDIA_DIR="$out/media"
export FSCTL_CONF_DIR="$out/freeswitch"

run() { echo "\$ fsctl $*"; "$fsctl" "$@"; }

run init
run tenant add acme.example --name "ACME & Co <Vilnius>" --tz Europe/Vilnius
for n in 101 102 103 104; do
  run user add acme.example $n --name "User $n" --email "u$n@acme.example"
done
run user edit acme.example 101 --record
run group add acme.example 200 --name "Sales hunt" --strategy sequential --order rotating --ring-time 20 \
    --member 102 --member 103 --member 104 --fallback voicemail:101
run group add acme.example 201 --name "Everyone" --strategy simultaneous --member 101 --member 102 --member 103
run queue add acme.example 600 --name Support --agent 103 --agent 104 --max-wait 120 --overflow voicemail:101
run conference add acme.example 700 --name "Board room" --pin 4321
run ivr add acme.example 500 --name "Main menu" --entry 1=group:200 --entry 2=queue:600 --entry 0=user:101 \
    --exit voicemail:101
run time-rule add acme.example office --range 'mon-fri 08:00-17:00' --holiday 2026-12-24..2026-12-26 \
    --match ivr:500 --nomatch voicemail:101
run did add acme.example +37052000000 --to timerule:office --name "Main line"
run did add acme.example +37052000001 --to group:201 --name "Sales line"
run blacklist add acme.example +37060000000 --note "spam caller"
printf 'number,name\n+37061234567,"UAB Tiekėjas"\n+37069999999,Jonas\n' > "$out/contacts.csv"
run contact import acme.example "$out/contacts.csv"
run tenant list
run user list acme.example
run group list acme.example
run render --out "$out/freeswitch"
echo
echo "Rendered FreeSWITCH configuration:"
find "$out/freeswitch" -type f | sort | while read -r f; do echo "  $f ($(wc -c < "$f") bytes)"; done
# What the call logic would do with a call to the main line, on a working day and on a holiday.
run trace acme.example +37069999999 +37052000000 --at "2026-12-02 10:30"
run trace acme.example +37069999999 +37052000000 --at "2026-12-24 10:30"
echo
echo "demo database: $out/fsctl.db"
