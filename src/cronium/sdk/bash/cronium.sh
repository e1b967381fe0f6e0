# shellcheck shell=bash
# Cronium Bash SDK: talk to the Runtime API from a running script.
#
# Sourced before every Bash script of a run (BASH_ENV); `source "$BASH_ENV"` works too.
# Defines functions only (all named cronium*), sets no variable, changes no shell option,
# prints nothing. Needs curl; jq or python3 are used when present (see docs/sdk.md).
#
# Return codes of every function: 0 success; 1 "no" (variable missing, condition of a
# test false); 2 usage error; 3 the Runtime API refused the call (message on stderr);
# 4 authentication failed (401/403: token invalid or job ended; message on stderr);
# 5 the Runtime API cannot be reached (after retries) or the SDK is not configured.

# -- internals -----------------------------------------------------------------------------

# cronium__quote TEXT: TEXT as a JSON string.
cronium__quote() {
    local s=${1-} i c
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/\\r}
    s=${s//$'\t'/\\t}
    case $s in
    *[[:cntrl:]]*)
        for ((i = 1; i < 32; i++)); do
            printf -v c '%b' "\\x$(printf %02x "$i")"
            s=${s//"$c"/$(printf '\\u%04x' "$i")}
        done
        ;;
    esac
    printf '"%s"' "$s"
}

# cronium__unquote JSON_STRING: the text of a JSON string literal (with its quotes).
# shellcheck disable=SC1003 # '\\' is a literal pair of backslashes
cronium__unquote() {
    local s=${1-} out='' part more
    s=${s#\"}
    s=${s%\"}
    case $s in
    *\\*) ;;
    *)
        printf '%s' "$s"
        return 0
        ;;
    esac
    # Split at each escaped backslash (the leftmost \\ is always one), then decode the
    # pieces: only \" \/ \b \f \n \r \t \uXXXX are left in them, and printf %b
    # decodes all but the first two.
    while :; do
        case $s in
        *'\\'*)
            part=${s%%'\\'*}
            s=${s#*'\\'}
            more=1
            ;;
        *)
            part=$s
            more=0
            ;;
        esac
        part=${part//\\\"/\"}
        part=${part//\\\//\/}
        printf -v part '%b' "$part"
        out+=$part
        [ "$more" = 1 ] || break
        out+='\'
    done
    printf '%s' "$out"
}

# cronium__is_flat_json TEXT: 0 when TEXT surely is JSON: a string, or an object or array
# of strings, numbers, true, false, null (ASCII, up to 4 KiB), checked in pure Bash;
# 1 when not sure (cronium__is_json then asks jq or python3, which cost a process).
cronium__is_flat_json() {
    local v=${1-} ws=$'[ \t\n\r]*' str num scalar member
    [ "${#v}" -le 4096 ] || return 1
    case $v in *[![:ascii:]]*) return 1 ;; esac
    str='"([^"\\[:cntrl:]]|\\["\\/bfnrt]|\\u[0-9A-Fa-f]{4})*"'
    num='-?(0|[1-9][0-9]*)([.][0-9]+)?([eE][+-]?[0-9]+)?'
    scalar="($str|$num|true|false|null)"
    member="$str$ws:$ws$scalar"
    str="^$ws($str|[{]$ws($member$ws(,$ws$member$ws)*)?[}]|\\[$ws($scalar$ws(,$ws$scalar$ws)*)?])$ws\$"
    [[ $v =~ $str ]]
}

# cronium__is_json TEXT: whether TEXT is one JSON value (jq or python3 if present).
cronium__is_json() {
    cronium__is_flat_json "$1" && return 0
    if command -v jq >/dev/null 2>&1; then
        printf '%s' "$1" | jq -e 'true' >/dev/null 2>&1
    elif command -v python3 >/dev/null 2>&1; then
        printf '%s' "$1" | python3 -c 'import json,sys; json.loads(sys.stdin.read())' >/dev/null 2>&1
    else
        return 0 # cannot check: the server will (422 if invalid)
    fi
}

# cronium__to_json VALUE: VALUE when it is JSON, else VALUE as a JSON string.
cronium__to_json() (
    local v=${1-} trimmed
    case $v in
    true | false | null)
        printf '%s' "$v"
        return 0
        ;;
    esac
    if [[ $v =~ ^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$ ]]; then
        printf '%s' "$v"
        return 0
    fi
    trimmed=${v#"${v%%[![:space:]]*}"}
    case $trimmed in
    \{* | \[* | \"*)
        if cronium__is_json "$v"; then
            printf '%s' "$v"
            return 0
        fi
        ;;
    esac
    cronium__quote "$v"
)

# cronium__value RESPONSE: the raw JSON of the last member "value" of a compact response
# such as {"value":X} or {"key":"k","value":X}.
cronium__value() {
    local r=${1-}
    case $r in
    *'"value":'*) ;;
    *) return 1 ;;
    esac
    r=${r#*\"value\":}
    printf '%s' "${r%\}}"
}

# cronium__print JSON: strings raw, everything else as (compact) JSON; then a newline.
cronium__print() {
    case ${1-} in
    \"*)
        cronium__unquote "$1"
        printf '\n'
        ;;
    *) printf '%s\n' "${1-}" ;;
    esac
}

cronium__sleep_ms() {
    sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))" 2>/dev/null || sleep $((($1 + 999) / 1000))
}

# cronium__error_message BODY: "code: message" from {"error":{"code","message",…}}.
cronium__error_message() (
    local body=${1-} code='' message=''
    if [[ $body =~ \"code\":\"([^\"]*)\" ]]; then
        code=${BASH_REMATCH[1]}
    fi
    if [[ $body =~ \"message\":(\"([^\"\\]|\\.)*\") ]]; then
        message=$(cronium__unquote "${BASH_REMATCH[1]}")
    elif [ -n "$body" ]; then
        message=${body:0:300}
    fi
    printf '%s%s' "${code:+$code: }" "${message:-no message}"
)

# cronium__request [--404-ok] METHOD PATH [BODY]: print the answer's body.
# Retries connection failures, 429 and 5xx (a POST only when it surely was not applied:
# not connected, 429, 502, 503, 504) up to 5 times, 0.1 s doubling, honouring Retry-After.
cronium__request() {
    local allow404=0
    if [ "${1-}" = --404-ok ]; then
        allow404=1
        shift
    fi
    local method=${1-} path=${2-} body=${3-} has_body=0
    [ $# -ge 3 ] && has_body=1
    local url=${CRONIUM_RUNTIME_URL-} token=${CRONIUM_EXECUTION_TOKEN-}
    if [ -z "$url" ]; then
        echo "cronium: CRONIUM_RUNTIME_URL is not set: this script is not running under Cronium" >&2
        return 5
    fi
    if [ -z "$token" ]; then
        echo "cronium: CRONIUM_EXECUTION_TOKEN is not set: this script is not running under Cronium" >&2
        return 4
    fi
    if ! command -v curl >/dev/null 2>&1; then
        echo "cronium: the Bash SDK needs curl, which is not installed" >&2
        return 5
    fi
    local -a target
    case $url in
    unix://*) target=(--unix-socket "${url#unix://}" "http://cronium/runtime/v1$path") ;;
    http://* | https://*) target=("${url%/}/runtime/v1$path") ;;
    *)
        echo "cronium: CRONIUM_RUNTIME_URL $url: expected unix:///path, http://host:port or https://host" >&2
        return 5
        ;;
    esac
    local max_time=60
    [ "$path" = /tool-actions ] && max_time=300
    local -a opts=(-sS -i -X "$method" --connect-timeout 10 --max-time "$max_time"
        -H 'Expect:' -H 'Accept: application/json' -H 'User-Agent: cronium-bash/1.0.0')
    [ "$has_body" = 1 ] && opts+=(-H 'Content-Type: application/json' --data-binary @-)
    local attempt=0 delay=100 out rc status rest headers resp wait line retry_after
    while :; do
        rc=0
        # The token goes through a config file on fd 3, never on the command line (ps).
        if [ "$has_body" = 1 ]; then
            out=$(curl "${opts[@]}" -K /dev/fd/3 -w '\n%{http_code}' "${target[@]}" \
                3<<<"header = \"Authorization: Bearer $token\"" 2>/dev/null <<<"$body") || rc=$?
        else
            out=$(curl "${opts[@]}" -K /dev/fd/3 -w '\n%{http_code}' "${target[@]}" \
                3<<<"header = \"Authorization: Bearer $token\"" 2>/dev/null </dev/null) || rc=$?
        fi
        status=${out##*$'\n'}
        rest=${out%$'\n'*}
        [ "$rest" = "$out" ] && rest=''
        headers=${rest%%$'\r\n\r\n'*}
        resp=${rest#*$'\r\n\r\n'}
        [ "$resp" = "$rest" ] && resp=''
        retry_after=''
        local retry=0
        if [ "$rc" != 0 ] || [ "$status" = 000 ] || [ -z "$status" ]; then
            case $rc in
            6 | 7) retry=1 ;; # not resolved / not connected: the request was not sent
            16 | 18 | 28 | 52 | 55 | 56 | 92)
                case $method in GET | PUT | DELETE) retry=1 ;; esac
                ;;
            esac
            if [ "$retry" = 0 ] || [ "$attempt" -ge 4 ]; then
                local where=${url#unix://}
                echo "cronium: $method /runtime/v1$path: cannot reach the Runtime API at $where (curl exit $rc)$([ "$attempt" -gt 0 ] && echo " after $((attempt + 1)) attempts")" >&2
                return 5
            fi
        else
            case $status in
            2??)
                printf '%s' "$resp"
                return 0
                ;;
            404)
                if [ "$allow404" = 1 ]; then
                    return 1
                fi
                ;;
            429 | 502 | 503 | 504) retry=1 ;;
            500) case $method in GET | PUT | DELETE) retry=1 ;; esac ;;
            esac
            if [ "$retry" = 0 ] || [ "$attempt" -ge 4 ]; then
                local message
                message=$(cronium__error_message "$resp")
                case $status in
                401 | 403)
                    echo "cronium: authentication failed: $method /runtime/v1$path: $status $message" >&2
                    return 4
                    ;;
                404 | 405)
                    if [ "$path" = /tool-actions ]; then
                        echo "cronium: tool actions are not available on this Cronium server ($method /runtime/v1$path: $status $message)" >&2
                        return 3
                    fi
                    ;;
                esac
                echo "cronium: $method /runtime/v1$path failed: $status $message" >&2
                return 3
            fi
            while IFS= read -r line; do
                case $line in
                [Rr][Ee][Tt][Rr][Yy]-[Aa][Ff][Tt][Ee][Rr]:*)
                    line=${line#*:}
                    line=${line//[!0-9]/}
                    [ -n "$line" ] && retry_after=$((10#$line * 1000))
                    ;;
                esac
            done <<<"$headers"
        fi
        wait=$delay
        if [ -n "$retry_after" ] && [ "$retry_after" -gt "$wait" ]; then
            wait=$retry_after
        fi
        [ "$wait" -gt 30000 ] && wait=30000
        cronium__sleep_ms "$wait"
        attempt=$((attempt + 1))
        delay=$((delay * 2))
    done
}

# cronium__key KEY: KEY percent-encoded for a URL path (valid names need no encoding).
cronium__key() {
    local key=${1-} out='' i c
    if [ -z "$key" ]; then
        echo "cronium: a variable name is required" >&2
        return 2
    fi
    for ((i = 0; i < ${#key}; i++)); do
        c=${key:i:1}
        case $c in
        [A-Za-z0-9_.~-]) out+=$c ;;
        *) out+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    printf '%s' "$out"
}

# -- the API -------------------------------------------------------------------------------

# cronium_input: print the execution's input as JSON ({} when the run was given none).
cronium_input() {
    local r rc=0
    r=$(cronium__request GET /input) || rc=$?
    [ "$rc" = 0 ] || return "$rc"
    printf '%s\n' "$(cronium__value "$r")"
}

# cronium_output [VALUE]: set this job's output (VALUE or stdin; JSON, or text sent as a string).
cronium_output() {
    local value rc=0
    if [ $# -ge 1 ]; then value=$1; else value=$(cat); fi
    cronium__request PUT /output "{\"value\":$(cronium__to_json "$value")}" >/dev/null || rc=$?
    return "$rc"
}

# cronium_get_variable KEY: print the value (strings raw, other values as JSON);
# a missing variable prints nothing and returns 1.
cronium_get_variable() {
    local key r rc=0
    key=$(cronium__key "${1-}") || return 2
    r=$(cronium__request --404-ok GET "/variables/$key") || rc=$?
    [ "$rc" = 0 ] || return "$rc"
    cronium__print "$(cronium__value "$r")"
}

# cronium_set_variable KEY [VALUE]: create or replace (VALUE or stdin; JSON, or text).
cronium_set_variable() {
    local key value rc=0
    key=$(cronium__key "${1-}") || return 2
    if [ $# -ge 2 ]; then value=$2; else value=$(cat); fi
    cronium__request PUT "/variables/$key" "{\"value\":$(cronium__to_json "$value")}" >/dev/null || rc=$?
    return "$rc"
}

# cronium_delete_variable KEY: returns 0 when deleted, 1 when it did not exist.
cronium_delete_variable() {
    local key rc=0
    key=$(cronium__key "${1-}") || return 2
    cronium__request --404-ok DELETE "/variables/$key" >/dev/null || rc=$?
    return "$rc"
}

# cronium_variable_exists KEY: returns 0 when it exists, 1 when not; prints nothing.
cronium_variable_exists() {
    local key rc=0
    key=$(cronium__key "${1-}") || return 2
    cronium__request --404-ok GET "/variables/$key" >/dev/null || rc=$?
    return "$rc"
}

# cronium_increment_variable KEY [BY]: atomically add BY (default 1); print the new value.
cronium_increment_variable() {
    local key by=${2-1} r rc=0
    key=$(cronium__key "${1-}") || return 2
    case $by in
    '' | *[!0-9.eE+-]*)
        echo "cronium_increment_variable: BY must be a number, not '$by'" >&2
        return 2
        ;;
    esac
    by=${by#+}
    r=$(cronium__request POST "/variables/$key/increment" "{\"by\":$by}") || rc=$?
    [ "$rc" = 0 ] || return "$rc"
    printf '%s\n' "$(cronium__value "$r")"
}

# cronium_append_variable KEY [VALUE]: atomically append to a list; print the new length.
cronium_append_variable() {
    local key value r rc=0
    key=$(cronium__key "${1-}") || return 2
    if [ $# -ge 2 ]; then value=$2; else value=$(cat); fi
    r=$(cronium__request POST "/variables/$key/append" "{\"value\":$(cronium__to_json "$value")}") || rc=$?
    [ "$rc" = 0 ] || return "$rc"
    r=${r##*\"length\":}
    printf '%s\n' "${r%\}}"
}

# cronium_set_condition true|false: set the condition of on_condition actions.
cronium_set_condition() {
    local value rc=0
    case ${1-} in
    true | TRUE | True | 1 | yes) value=true ;;
    false | FALSE | False | 0 | no) value=false ;;
    *)
        echo "cronium_set_condition: expected true or false, not '${1-}'" >&2
        return 2
        ;;
    esac
    cronium__request PUT /condition "{\"value\":$value}" >/dev/null || rc=$?
    return "$rc"
}

# cronium_get_condition: print true, false or null (not set yet).
cronium_get_condition() {
    local r rc=0
    r=$(cronium__request GET /condition) || rc=$?
    [ "$rc" = 0 ] || return "$rc"
    printf '%s\n' "$(cronium__value "$r")"
}

# cronium_event: print the run's context as JSON ({"event","execution","job","user"}).
cronium_event() {
    local r rc=0
    r=$(cronium__request GET /context) || rc=$?
    [ "$rc" = 0 ] || return "$rc"
    printf '%s\n' "$r"
}

# cronium_event_field PATH: print one field of the context, e.g. event.name, job.mode,
# event.tags.0 (strings raw, other values as JSON); a missing field prints nothing, returns 1.
cronium_event_field() {
    local field=${1-} r rc=0
    if [ -z "$field" ]; then
        echo "cronium_event_field: a field path is required, e.g. event.name" >&2
        return 2
    fi
    r=$(cronium__request GET /context) || rc=$?
    [ "$rc" = 0 ] || return "$rc"
    cronium__json_field "$r" "$field"
}

# cronium__json_field JSON PATH: see cronium_event_field.
cronium__json_field() (
    local json=$1 field=$2
    if command -v jq >/dev/null 2>&1; then
        printf '%s' "$json" | jq -er --arg p "$field" '
            ($p | split(".") | map(if test("^[0-9]+$") then tonumber else . end)) as $path
            | if any(paths; . == $path) then getpath($path) | (if type == "string" then . else tojson end)
              else empty end' 2>/dev/null
        return $(($? == 0 ? 0 : 1))
    fi
    if command -v python3 >/dev/null 2>&1; then
        printf '%s' "$json" | python3 -c '
import json, sys
value = json.loads(sys.stdin.read())
for part in sys.argv[1].split("."):
    try:
        value = value[int(part)] if isinstance(value, list) else value[part]
    except (KeyError, IndexError, ValueError, TypeError):
        sys.exit(1)
print(value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False))
' "$field" 2>/dev/null
        return $(($? == 0 ? 0 : 1))
    fi
    # Without jq or python3: SECTION.FIELD of the context (scalars and flat lists only).
    local section=${field%%.*} name=${field#*.} obj value
    case $field in *.*.* | .* | *. | *[!A-Za-z0-9_.]*) return 1 ;; esac
    case $json in *"\"$section\":{"*) ;; *) return 1 ;; esac
    obj=,${json#*\""$section"\":\{}
    obj=${obj%%\}*}
    case $obj in *",\"$name\":"*) ;; *) return 1 ;; esac
    value=${obj#*,\""$name"\":}
    if [[ $value =~ ^(\"([^\"\\]|\\.)*\"|\[[^]]*\]|[^,]*) ]]; then
        cronium__print "${BASH_REMATCH[1]}"
        return 0
    fi
    return 1
)

# cronium_info: print this run's ids and mode (from the environment; no API call).
cronium_info() {
    printf 'execution_id=%s\njob_id=%s\nevent_id=%s\nmode=%s\n' \
        "${CRONIUM_EXECUTION_ID-}" "${CRONIUM_JOB_ID-}" "${CRONIUM_EVENT_ID-}" "${CRONIUM_EXECUTION_MODE-}"
}

# cronium_execute_tool_action TOOL ACTION [PARAMS_JSON]: run a tool action; print the answer.
cronium_execute_tool_action() {
    local tool=${1-} action=${2-} params=${3-'{}'} r rc=0
    if [ -z "$tool" ] || [ -z "$action" ]; then
        echo "cronium_execute_tool_action: usage: cronium_execute_tool_action TOOL ACTION [PARAMS_JSON]" >&2
        return 2
    fi
    case ${params#"${params%%[![:space:]]*}"} in
    \{*) ;;
    *)
        echo "cronium_execute_tool_action: PARAMS_JSON must be a JSON object" >&2
        return 2
        ;;
    esac
    r=$(cronium__request POST /tool-actions \
        "{\"tool\":$(cronium__quote "$tool"),\"action\":$(cronium__quote "$action"),\"params\":$params}") || rc=$?
    [ "$rc" = 0 ] || return "$rc"
    printf '%s\n' "$r"
}

# cronium__params NAME VALUE…: a JSON object of the non-empty string pairs (credential_id as a number).
cronium__params() {
    local out='' sep=''
    while [ $# -ge 2 ]; do
        if [ -n "$2" ]; then
            if [ "$1" = credential_id ] && [[ $2 =~ ^[0-9]+$ ]]; then
                out+="$sep\"$1\":$2"
            else
                out+="$sep\"$1\":$(cronium__quote "$2")"
            fi
            sep=,
        fi
        shift 2
    done
    printf '{%s}' "$out"
}

# cronium_send_email TO SUBJECT BODY [--html HTML] [--credential-id ID] [--cc ADDR] [--bcc ADDR]
#   [--reply-to ADDR]: tool "email", action "send".
cronium_send_email() {
    if [ $# -lt 3 ]; then
        echo "cronium_send_email: usage: cronium_send_email TO SUBJECT BODY [--html HTML] [--credential-id ID] [--cc A] [--bcc A] [--reply-to A]" >&2
        return 2
    fi
    local to=$1 subject=$2 body=$3 html='' credential='' cc='' bcc='' reply_to=''
    shift 3
    while [ $# -gt 0 ]; do
        case $1 in
        --html) html=${2-} ;;
        --credential-id) credential=${2-} ;;
        --cc) cc=${2-} ;;
        --bcc) bcc=${2-} ;;
        --reply-to) reply_to=${2-} ;;
        *)
            echo "cronium_send_email: unknown option '$1'" >&2
            return 2
            ;;
        esac
        shift 2 2>/dev/null || shift
    done
    cronium_execute_tool_action email send "$(cronium__params to "$to" subject "$subject" body "$body" \
        html "$html" credential_id "$credential" cc "$cc" bcc "$bcc" reply_to "$reply_to")"
}

# cronium_send_slack_message TEXT [--channel C] [--credential-id ID] [--username U]:
# tool "slack", action "send_message".
cronium_send_slack_message() {
    if [ $# -lt 1 ]; then
        echo "cronium_send_slack_message: usage: cronium_send_slack_message TEXT [--channel C] [--credential-id ID] [--username U]" >&2
        return 2
    fi
    local text=$1 channel='' credential='' username=''
    shift
    while [ $# -gt 0 ]; do
        case $1 in
        --channel) channel=${2-} ;;
        --credential-id) credential=${2-} ;;
        --username) username=${2-} ;;
        *)
            echo "cronium_send_slack_message: unknown option '$1'" >&2
            return 2
            ;;
        esac
        shift 2 2>/dev/null || shift
    done
    cronium_execute_tool_action slack send_message "$(cronium__params text "$text" channel "$channel" \
        credential_id "$credential" username "$username")"
}

# cronium_send_discord_message CONTENT [--credential-id ID] [--username U]:
# tool "discord", action "send_message".
cronium_send_discord_message() {
    if [ $# -lt 1 ]; then
        echo "cronium_send_discord_message: usage: cronium_send_discord_message CONTENT [--credential-id ID] [--username U]" >&2
        return 2
    fi
    local content=$1 credential='' username=''
    shift
    while [ $# -gt 0 ]; do
        case $1 in
        --credential-id) credential=${2-} ;;
        --username) username=${2-} ;;
        *)
            echo "cronium_send_discord_message: unknown option '$1'" >&2
            return 2
            ;;
        esac
        shift 2 2>/dev/null || shift
    done
    cronium_execute_tool_action discord send_message "$(cronium__params content "$content" \
        credential_id "$credential" username "$username")"
}

# The dotted names older scripts used (not valid in POSIX mode, so defined only outside it).
case :${SHELLOPTS-}: in
*:posix:*) ;;
*)
    eval '
cronium.input() { cronium_input "$@"; }
cronium.output() { cronium_output "$@"; }
cronium.getVariable() { cronium_get_variable "$@"; }
cronium.setVariable() { cronium_set_variable "$@"; }
cronium.event() { cronium_event "$@"; }
'
    ;;
esac
