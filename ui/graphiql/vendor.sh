#!/usr/bin/env bash
# Refreshes the GraphiQL files the CO serves at /graphiql, from the npm registry: GraphiQL's
# browser build and React's, gzipped as the CO sends them. Run by hand when upgrading; builds
# and tests never download anything (the CO embeds these files).
set -euo pipefail
cd "$(dirname "$0")"
graphiql="${GRAPHIQL_VERSION:-3.8.3}"
react="${REACT_VERSION:-18.3.1}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "graphiql@$graphiql" "react@$react" "react-dom@$react" >/dev/null)
for pkg in "graphiql-$graphiql" "react-$react" "react-dom-$react"; do
  mkdir -p "$work/$pkg" && tar -xzf "$work/$pkg.tgz" -C "$work/$pkg"
done
gz() { gzip -9 -n -c "$1" > "$2"; }
gz "$work/graphiql-$graphiql/package/graphiql.min.js" graphiql.min.js.gz
gz "$work/graphiql-$graphiql/package/graphiql.min.css" graphiql.min.css.gz
gz "$work/react-$react/package/umd/react.production.min.js" react.production.min.js.gz
gz "$work/react-dom-$react/package/umd/react-dom.production.min.js" react-dom.production.min.js.gz
cp "$work/graphiql-$graphiql/package/LICENSE" LICENSE.graphiql
cp "$work/react-$react/package/LICENSE" LICENSE.react
echo "graphiql $graphiql, react $react" > VERSIONS
