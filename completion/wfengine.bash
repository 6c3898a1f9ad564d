# bash completion for wfengine: commands and options (read from
# `wfengine --help`, so they follow the binary), run ids (the directories of
# the state's runs/), step and group ids (`wfengine plan --format json`) for
# --from, --only, --skip and --fail-at, run statuses for --status, the
# actions of `state`, and files or directories where one goes.
# Installed by `make install` in share/bash-completion/completions/.

# The words of `wfengine --help`: commands (after "wfengine " at a line's
# start) and options (--long and -x).
_wfengine_help() {
  "${1:-wfengine}" --help 2>/dev/null
}

_wfengine_commands() {
  _wfengine_help "$1" | sed -n 's/^ *\(usage: \)\{0,1\}wfengine \([a-z][a-z-]*\)\( .*\)\{0,1\}$/\2/p' | sort -u
}

_wfengine_options() {
  _wfengine_help "$1" | grep -o -- '\(^\|[ [,|]\)--\{0,1\}[a-z][a-z-]*' | sed 's/^[ [,|]//' |
    grep -- '^-' | sort -u
}

# The state directory the command line names: --state DIR, else
# $WFENGINE_STATE, else ./.wfengine.
_wfengine_state() {
  local i
  for ((i = 1; i < ${#COMP_WORDS[@]}; i++)); do
    case "${COMP_WORDS[i]}" in
    --state) printf '%s\n' "${COMP_WORDS[i + 1]}"; return ;;
    --state=*) printf '%s\n' "${COMP_WORDS[i]#--state=}"; return ;;
    esac
  done
  printf '%s\n' "${WFENGINE_STATE:-./.wfengine}"
}

_wfengine_run_ids() {
  local runs
  runs="$(_wfengine_state)/runs"
  [ -d "$runs" ] && (cd "$runs" && ls -1 2>/dev/null)
}

# The step and group ids of the workflow on the command line.
_wfengine_step_ids() {
  local word workflow=""
  for word in "${COMP_WORDS[@]:1}"; do
    case "$word" in *.lua) workflow=$word; break ;; esac
  done
  [ -n "$workflow" ] || return
  "$1" plan "$workflow" --format json 2>/dev/null |
    grep -o '"\(id\|group\)":"[a-z][a-z0-9_]*"' | sed 's/.*:"\(.*\)"/\1/' | sort -u
}

_wfengine() {
  local cur prev program command="" i
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD - 1]}
  program=${COMP_WORDS[0]}
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in -*) ;; *) command=${COMP_WORDS[i]}; break ;; esac
  done
  COMPREPLY=()
  case "$prev" in
  --from | --fail-at)
    mapfile -t COMPREPLY < <(compgen -W "$(_wfengine_step_ids "$program")" -- "$cur")
    return ;;
  --only | --skip)
    local head="" tail=$cur
    case "$cur" in *,*) head=${cur%,*},; tail=${cur##*,} ;; esac
    mapfile -t COMPREPLY < <(compgen -P "$head" -W "$(_wfengine_step_ids "$program")" -- "$tail")
    return ;;
  --format) mapfile -t COMPREPLY < <(compgen -W "text markdown json dot" -- "$cur"); return ;;
  --on-failure) mapfile -t COMPREPLY < <(compgen -W "compensate pause" -- "$cur"); return ;;
  --status) # the statuses `wfengine runs --status` accepts (engine/lua/main.lua)
    mapfile -t COMPREPLY < <(compgen -W "running crashed queued succeeded failed compensated paused
      interrupted" -- "$cur")
    return ;;
  --state | --workflows) mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
  -c | --config | --report | --approved | --token-file | --tls-cert | --tls-key)
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    return ;;
  --workflow) # resume and rollback: a workflow file; runs: a workflow's name
    case "$command" in resume | rollback) mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;; esac
    return ;;
  -p | --param | --listen | --name | --concurrency | --lease | --since | --tolerance) return ;;
  esac
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_wfengine_options "$program")" -- "$cur")
    return
  fi
  case "$command" in
  "") mapfile -t COMPREPLY < <(compgen -W "$(_wfengine_commands "$program")" -- "$cur")
    mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -f -X '!*.lua' -- "$cur")
    mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -d -- "$cur") ;;
  resume | rollback | show)
    mapfile -t COMPREPLY < <(compgen -W "$(_wfengine_run_ids)" -- "$cur") ;;
  state)
    case "$prev" in
    state) mapfile -t COMPREPLY < <(compgen -W "init import" -- "$cur") ;;
    import) mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
    esac ;;
  run | check | plan | submit | *.lua)
    mapfile -t COMPREPLY < <(compgen -f -X '!*.lua' -- "$cur")
    mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -d -- "$cur") ;;
  esac
}
complete -F _wfengine wfengine
