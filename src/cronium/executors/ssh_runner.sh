# Cronium's job runner on an SSH host: `sh <job dir>/run.sh <interpreter…> <script>`.
#
# - The environment (secrets, execution token) comes from the 0600 file `env` in the 0700
#   job dir, never from the command line; the file is removed before the script starts.
# - The script runs in its own session and process group (setsid).
# - stdin is the control channel: a line "TERM" or "KILL" signals the script's group, and
#   end-of-file (the SSH session went away) kills it: nothing outlives a lost connection.
# - The job dir is removed when the script is done, whatever happened.
dir=$(cd "$(dirname "$0")" && pwd) || exit 125
cd "$dir" || exit 125
set -a
. ./env
set +a
rm -f ./env
exec 3<&0
setsid "$@" </dev/null 3<&- &
job=$!
(
  while IFS= read -r command; do
    case $command in
      TERM) kill -TERM -"$job" 2>/dev/null ;;
      KILL) kill -KILL -"$job" 2>/dev/null ;;
    esac
  done
  kill -KILL -"$job" 2>/dev/null
) <&3 >/dev/null 2>&1 &
watch=$!
# From here the runner itself writes nothing to the session: once the connection is gone,
# a message from `wait` (dash reports killed jobs) would be a write to a dead pipe, and its
# SIGPIPE would end the runner before it removes the job dir.
exec 3<&- >/dev/null 2>&1
wait "$job"
code=$?
kill -KILL -"$job" 2>/dev/null
kill "$watch" 2>/dev/null
cd / && rm -rf "$dir"
exit "$code"
