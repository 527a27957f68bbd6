#!/usr/bin/env bash
# mvc quickstart: version a model next to git, go back to an old version, share it through a remote.
# Runs in a new temporary git repository; prints each command as you would type it.
set -euo pipefail

command -v mvc >/dev/null || { echo "mvc is not on PATH: install it first (see README.md)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/mvc-quickstart.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"

show() { local a out=""; for a in "$@"; do [[ $a =~ [^A-Za-z0-9_./=@#:,+-] ]] && a="\"$a\""; out+="$a "; done; printf '\n$ %s\n' "${out% }"; }
run() { show "$@"; "$@"; }
# a stand-in for a training run: writes N MiB of seeded random bytes
train() { python3 -c "import random,sys; open(sys.argv[1],'wb').write(random.Random(int(sys.argv[3])).randbytes(int(sys.argv[2])<<20))" "$@"; }

git init -q -b main project && cd project
git config user.name "Quickstart" && git config user.email "quickstart@example.com"

run mvc init
run git commit -q -m "Set up mvc"

printf '\n# train a first model\n'; train churn.safetensors 8 1
run mvc add churn.safetensors --meta accuracy=0.91
run git commit -q -m "Churn model, first version"
v1=$(git rev-parse --short HEAD)

printf '\n# train again: the model changes\n'; train churn.safetensors 8 2
run mvc status
run mvc add churn.safetensors --meta accuracy=0.94
run git commit -q -m "Churn model, retrained"

printf '\n# go back to the first version\n'
run mvc checkout --rev "$v1"
run mvc status
run mvc ls
run mvc ls --rev HEAD --json
run mvc get churn.safetensors --rev HEAD -o ../churn-latest.safetensors
run git log --oneline

printf '\n# back to the retrained version: the checkout above staged the old pointer, this unstages it\n'
run mvc checkout --rev HEAD churn.safetensors
run mvc status

# >>> remotes (issue 3)
printf '\n# share the models through a remote: a directory here; s3://bucket/prefix works the same way\n'
run mvc remote add origin ../mvc-remote --default
run mvc push --all-commits
run mvc push
run git commit -q -m "Share models through the origin remote" .mvc/config.toml

printf '\n# a machine without the cache: pull brings the weights back from the remote\n'
run rm -rf .mvc/cache churn.safetensors
run mvc status -r origin
run mvc pull
run mvc status -r origin
# <<< remotes

# >>> registry (issue 4)
printf '\n# name the model, register a version and put it in production (git tags, readable by GTO too)\n'
run mvc add churn.safetensors --name churn
run git commit -q -m "Name the churn model"
run mvc register churn
run mvc assign churn prod
run mvc registry
run mvc log churn
run mvc get churn#prod -o ../churn-prod.safetensors
# <<< registry

printf '\nquickstart finished: every step above ran without error.\n'
