# bash completion for sysext and confext (libsysext)        -*- shell-script -*-

_libsysext_images() {
    # Names of the images `list` finds (first column, no legend), for add/remove NAME...
    local cmd=$1; shift
    "$cmd" "$@" --no-legend list 2>/dev/null | while read -r name _; do printf '%s\n' "$name"; done
}

_sysext() {
    local cur prev words cword
    _init_completion -s 2>/dev/null || {
        cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
        words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
    }
    local verbs="status list merge unmerge refresh add remove plan help"
    local opts="--help -h --version --mutable= --no-pager --no-legend --long --root= --json=
        --force --no-reload --image-policy= --noexec= --always-refresh --always-refresh=
        --allow-block-devices --compat= --confext --sysext --verbose -v"

    case $cur in
    --mutable=*)
        COMPREPLY=($(compgen -W "no yes auto import ephemeral ephemeral-import help" -- "${cur#*=}")); return ;;
    --json=*)
        COMPREPLY=($(compgen -W "short pretty off help" -- "${cur#*=}")); return ;;
    --noexec=* | --always-refresh=*)
        COMPREPLY=($(compgen -W "yes no" -- "${cur#*=}")); return ;;
    --compat=*)
        COMPREPLY=($(compgen -W "257 262" -- "${cur#*=}")); return ;;
    --root=*)
        COMPREPLY=($(compgen -d -- "${cur#*=}")); return ;;
    --image-policy=*)
        return ;;
    esac
    case $prev in
    --root) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --mutable) COMPREPLY=($(compgen -W "no yes auto import ephemeral ephemeral-import help" -- "$cur")); return ;;
    --json) COMPREPLY=($(compgen -W "short pretty off help" -- "$cur")); return ;;
    --noexec) COMPREPLY=($(compgen -W "yes no" -- "$cur")); return ;;
    --compat) COMPREPLY=($(compgen -W "257 262" -- "$cur")); return ;;
    --image-policy) return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        [[ ${COMPREPLY[0]-} == *= ]] && compopt -o nospace 2>/dev/null
        return
    fi
    # The verb is the first word that is not an option (or an option's separate argument).
    local i verb= w skipnext= cmdargs=()
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        if [[ -n $skipnext ]]; then cmdargs+=("$w"); skipnext=; continue; fi
        case $w in
        --root | --mutable | --json | --noexec | --compat | --image-policy) cmdargs+=("$w"); skipnext=1 ;;
        --root=* | --confext | --sysext | --compat=*) cmdargs+=("$w") ;;
        -*) ;;
        *) verb=$w; break ;;
        esac
    done
    if [[ -z $verb ]]; then
        COMPREPLY=($(compgen -W "$verbs" -- "$cur"))
    elif [[ $verb == add || $verb == remove ]]; then
        COMPREPLY=($(compgen -W "$(_libsysext_images "${words[0]}" "${cmdargs[@]}")" -- "$cur"))
    fi
}
complete -F _sysext sysext confext
