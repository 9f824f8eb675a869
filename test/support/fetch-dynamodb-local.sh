#!/usr/bin/env bash
# Fetch DynamoDB Local (the official AWS emulator) for the compatibility tests.
#
# The jar ships inside the npm package amplify-dynamodb-simulator. We fetch just
# that tarball with `npm pack` (nothing is installed, package.json is not
# touched), check it against the pinned integrity, and extract it once into a
# git-ignored cache directory. Idempotent: when already extracted it only
# prints the path, so it is cheap to call before every run.
#
#   usage:  test/support/fetch-dynamodb-local.sh
#   prints: the directory holding DynamoDBLocal.jar and DynamoDBLocal_lib/
#   env:    DYNAMODB_LOCAL_CACHE  cache directory (default <repo>/.dynamodb-local)
set -euo pipefail

VERSION=2.9.30   # amplify-dynamodb-simulator; bundles DynamoDB Local 1.25.1
INTEGRITY=sha512-xTeeRLvzEfqyd5lh3bH4c0kHvSHHmmhD5ZDsHFKAQ5g2Zl6JqlFdutaQhCLHzxEp6Ry1o7TB6niIoXuQAnSewQ==

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${DYNAMODB_LOCAL_CACHE:-$root/.dynamodb-local}"
dest="$cache/amplify-dynamodb-simulator-$VERSION"
emulator="$dest/emulator"

if [ -f "$dest/.complete" ] && [ -f "$emulator/DynamoDBLocal.jar" ] && [ -d "$emulator/DynamoDBLocal_lib" ]; then
  echo "$emulator"
  exit 0
fi

mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "fetching amplify-dynamodb-simulator@$VERSION (DynamoDB Local) into $cache" >&2
(cd "$tmp" && npm pack --silent "amplify-dynamodb-simulator@$VERSION" >/dev/null)
tarball="$tmp/amplify-dynamodb-simulator-$VERSION.tgz"
[ -f "$tarball" ] || { echo "npm pack produced no $tarball" >&2; exit 1; }

actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 | tr -d '\n')"
if [ "$actual" != "$INTEGRITY" ]; then
  echo "integrity mismatch for $tarball: expected $INTEGRITY, got $actual" >&2
  exit 1
fi

tar xzf "$tarball" -C "$tmp"
if [ ! -f "$tmp/package/emulator/DynamoDBLocal.jar" ] || [ ! -d "$tmp/package/emulator/DynamoDBLocal_lib" ]; then
  echo "the tarball holds no emulator/DynamoDBLocal.jar and emulator/DynamoDBLocal_lib/" >&2
  exit 1
fi

# another run may have finished first; its copy is as good as ours
if [ -f "$dest/.complete" ]; then
  echo "$emulator"
  exit 0
fi
rm -rf "$dest"
mv "$tmp/package" "$dest"
touch "$dest/.complete"
echo "$emulator"
