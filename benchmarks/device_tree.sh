#!/usr/bin/env bash
# Slim the working tree that a `device` call carries, and put it back afterwards (docs/training.md, "Training on a
# GPU"). A call carries the tracked and untracked-not-ignored files, at most 64 MiB, and this repository tracks
# about 170 MB: shipped models, training states and results files that a training stage on the device does not read.
#
#   bash benchmarks/device_tree.sh slim [KEEP ...]   # untrack the heavy files, except the paths KEEP, and ignore them
#   (the device call)
#   bash benchmarks/device_tree.sh restore           # track them again: the index is HEAD's once more
#
# `slim` takes the heavy paths (training states, shipped weights, results files) out of git's index only
# (`git rm --cached`): every file stays on disk and in HEAD, and a block of .git/info/exclude between marker lines
# ignores them, so that the call leaves them behind. It refuses an index with staged changes (restore resets the
# index to HEAD) and a tree already slimmed. Commit nothing between the two: a commit would record the files as
# deleted. It prints what the call would carry.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
exclude=$(git rev-parse --git-path info/exclude)
begin="# device_tree.sh slim: begin"
end="# device_tree.sh slim: end"
heavy=(checkpoints "src/priorfit/models/*.safetensors" benchmarks/results)

unslim() {  # the index back to HEAD's, and the exclude block gone
  git reset -q
  sed -i "/^$begin\$/,/^$end\$/d" "$exclude"
}

carried_bytes() {
  git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -n 1 | cut -f1
}

case "${1:-}" in
  slim)
    shift
    if grep -qxF "$begin" "$exclude" 2>/dev/null; then
      echo "device_tree.sh: the tree is already slimmed; run 'restore' first" >&2; exit 2
    fi
    if ! git diff --cached --quiet; then
      echo "device_tree.sh: the index has staged changes; commit or unstage them first" >&2; exit 2
    fi
    for keep in "$@"; do  # a tracked file, named from the repository's root (no folder, no pattern)
      [ "$(git ls-files --full-name -- ":(top,literal)$keep")" = "$keep" ] || {
        echo "device_tree.sh: KEEP path '$keep' is not a tracked file named from the repository's root" >&2; exit 2; }
    done
    mapfile -t drop < <(git -c core.quotePath=false ls-files -- "${heavy[@]}" \
                          | grep -vxF -f <(printf '%s\n' "$@" "") || true)
    if [ "${#drop[@]}" -eq 0 ]; then echo "device_tree.sh: nothing to slim" >&2; exit 2; fi
    # The exclude block first: if untracking fails, the index is reset and the block removed again.
    mkdir -p "$(dirname "$exclude")"
    { echo "$begin"; printf '/%s\n' "${drop[@]}" | sed 's/[][*?\\]/\\&/g'; echo "$end"; } >> "$exclude"
    if ! GIT_LITERAL_PATHSPECS=1 git rm -q --cached -- "${drop[@]}"; then
      unslim
      echo "device_tree.sh: untracking failed; the tree is as it was" >&2; exit 1
    fi
    echo "untracked ${#drop[@]} files; a device call now carries $(( $(carried_bytes) / 1048576 )) MiB (limit 64)"
    ;;
  restore)
    if ! grep -qxF "$begin" "$exclude" 2>/dev/null; then
      echo "device_tree.sh: the tree is not slimmed" >&2; exit 2
    fi
    unslim
    echo "restored: the index is HEAD's; a device call would carry $(( $(carried_bytes) / 1048576 )) MiB"
    ;;
  *)
    echo "usage: $0 slim [KEEP ...] | restore" >&2; exit 2
    ;;
esac
