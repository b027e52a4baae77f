#!/usr/bin/env bash
# Commit a dingsync state file and push it to the branch the apply ran on, whatever the
# apply's outcome: after a success, a failure, a cancel or a timeout the state holds every
# record that was created, and a run that starts from an older state has to find them all
# again on DingTalk.
#
# Environment:
#   DINGSYNC_STATE           the state file (its .journal, left by a killed run, goes too)
#   DINGSYNC_BRANCH          the branch to push to
#   DINGSYNC_REMOTE          remote name or URL to fetch from and push to [origin]
#   DINGSYNC_PUSH_ATTEMPTS   pushes tried, rebasing on the branch's new tip in between [5]
#   DINGSYNC_GIT_NAME, DINGSYNC_GIT_EMAIL  committer when git has none configured
#
# Exit status 0: pushed, or nothing to push. 1: the state could not be pushed; that is
# loud on purpose (the job fails), and the state is in the job's artifact and, where the
# remote takes it, on a dingsync/unpushed-state/* branch.
#
# examples/ci/gitlab-ci.yml carries the lines below the `set` line verbatim (a GitLab job
# cannot run a file of the action's repository); tests/ci checks that the two stay equal.
set -eo pipefail
dingsync_commit_state() {
  local state="${DINGSYNC_STATE:?DINGSYNC_STATE must name the state file}"
  local branch="${DINGSYNC_BRANCH:?DINGSYNC_BRANCH must name the branch to push to}"
  local remote="${DINGSYNC_REMOTE:-origin}"
  local attempts="${DINGSYNC_PUSH_ATTEMPTS:-5}"
  local message="dingsync: record applied state [skip ci]"
  local path try job rescue
  git config user.name >/dev/null || git config user.name "${DINGSYNC_GIT_NAME:-dingsync}"
  git config user.email >/dev/null ||
    git config user.email "${DINGSYNC_GIT_EMAIL:-dingsync@localhost}"
  # Only the state and its journal: never the lock, the backup or a killed save's temp file.
  for path in "$state" "$state.journal"; do
    if [ -e "$path" ]; then
      git add -- "$path" || return 1
    elif git ls-files --error-unmatch -- "$path" >/dev/null 2>&1; then
      # Folded into the state by this run: its removal is part of the commit.
      git rm --cached --quiet -- "$path" || return 1
    fi
  done
  if ! git diff --cached --quiet -- "$state" "$state.journal"; then
    git commit --quiet -m "$message" || return 1
    echo "dingsync: committed the state as $(git rev-parse --short HEAD)"
  fi
  # Also pushes a commit an earlier, interrupted call made (GitLab's after_script).
  if ! git fetch --quiet "$remote" "$branch"; then
    echo "dingsync: cannot fetch $branch to push the state" >&2
  elif git merge-base --is-ancestor HEAD FETCH_HEAD; then
    echo "dingsync: the state is unchanged; nothing to push"
    return 0
  fi
  try=1
  while :; do
    if git push --quiet "$remote" "HEAD:refs/heads/$branch"; then
      echo "dingsync: pushed the state to $branch"
      return 0
    fi
    if [ "$try" -ge "$attempts" ]; then
      break
    fi
    # Rejected: most often $branch moved on meanwhile (a merge). Replay the state commit
    # on the new tip; a conflict means someone else changed the state, which only a
    # person can settle.
    echo "dingsync: push $try of $attempts rejected; rebasing on the new $branch" >&2
    sleep "$try"
    try=$((try + 1))
    if git fetch --quiet "$remote" "$branch" && ! git rebase --quiet FETCH_HEAD; then
      git rebase --abort || true
      echo "dingsync: the state changed on $branch meanwhile; cannot rebase onto it" >&2
      break
    fi
  done
  # One branch per job, so that a second call (GitLab's after_script) reuses it.
  job="${CI_JOB_ID:-}"
  if [ -z "$job" ] && [ -n "${GITHUB_RUN_ID:-}" ]; then
    job="$GITHUB_RUN_ID-${GITHUB_RUN_ATTEMPT:-1}"
  fi
  rescue="dingsync/unpushed-state/${job:-$(date -u +%Y%m%d%H%M%S)}"
  if git push --quiet "$remote" "HEAD:refs/heads/$rescue"; then
    rescue="it is on branch $rescue"
  else
    rescue="it is only in this job's artifact"
  fi
  if [ "${GITHUB_ACTIONS:-}" = true ]; then
    echo "::error title=dingsync state not pushed::The state was not pushed to $branch; $rescue. Commit it to $branch before the next apply."
  fi
  echo "dingsync: ERROR: the state was not pushed to $branch; $rescue." >&2
  echo "dingsync: commit it to $branch before the next apply, which otherwise starts from an older state." >&2
  return 1
}
dingsync_commit_state
