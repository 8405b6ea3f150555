#!/bin/sh
# One-shot genesis of a production chain (compose.yaml's `genesis` service).
#
#   notary-genesis OUT CHAIN_ID N
#
# Writes OUT/keys/validator-I/validator.key (0600, one folder per validator so each
# validator container mounts only its own key), OUT/public/validator-I.json,
# OUT/trust/trust.json (the trust file every node, the API and verifiers use) and
# OUT/sealing/master.key (the API's sealing master key, 0600). Validator I is reached at
# http://validator-I:7100. Runs once: an existing trust file is left alone.
set -eu
out=$1 chain_id=$2 n=$3
if [ -f "$out/trust/trust.json" ]; then
    echo "genesis: $out/trust/trust.json exists; nothing to do" >&2
    exit 0
fi
umask 077
mkdir -p "$out/public" "$out/trust" "$out/sealing"
i=0
records=""
while [ "$i" -lt "$n" ]; do
    name="validator-$i"
    mkdir -p "$out/keys/$name"
    notary keygen --name "$name" --address "http://$name:7100" --force \
        --out "$out/keys/$name/validator.key" --public-out "$out/public/$name.json"
    records="$records $out/public/$name.json"
    i=$((i + 1))
done
# shellcheck disable=SC2086 # word splitting of the record list is intended
notary genesis --chain-id "$chain_id" --out "$out/trust/trust.json" $records
chmod 0644 "$out/trust/trust.json" "$out"/public/*.json
chmod 0755 "$out/trust" "$out/public"
if [ ! -f "$out/sealing/master.key" ]; then
    head -c 32 /dev/urandom | base64 > "$out/sealing/master.key"
fi
# The containers run as the image's `notary` user: hand it what it must read.
if [ "$(id -u)" = 0 ]; then
    chown -R "${NOTARY_UID:-10001}" "$out"
fi
echo "genesis: $n validators, trust file $out/trust/trust.json" >&2
