# bash completion for secretd(8)
#
# Verbs and options are those `secretd --help` and `secretd VERB --help`
# list: tests/install/test-install.sh compares them with the functions below.

_secretd_verbs() {
        echo run init pubkey join check
}

_secretd_options() {
        case $1 in
        init) echo --key --force --help ;;
        pubkey) echo --key --help ;;
        join) echo --realm-file --help ;;
        check)
                echo --config --store --key --realm --realm-file --docker-socket --plugin-dir --seccomp \
                        --etcd-ca --etcd-cert --etcd-key --etcd-auth-file --help
                ;;
        run)
                echo --config --store --driver --key --realm --realm-file --state-dir --docker-socket --plugin-dir \
                        --default-size --max-size --log-level --max-volumes --max-instances-per-volume --max-inodes \
                        --max-total-tmpfs --floor-file --cache-dir --seccomp --connection-timeout --admin-socket \
                        --audit-log --etcd-ca --etcd-cert --etcd-key --etcd-auth-file --metrics-listen --on-unverifiable \
                        --help
                ;;
        esac
}

_secretd() {
        local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
        local verb=run
        COMPREPLY=()
        case ${COMP_WORDS[1]} in
        init | pubkey | join | check | run) verb=${COMP_WORDS[1]} ;;
        esac

        case $prev in
        --config | --key | --realm-file | --docker-socket | --floor-file | --admin-socket | --audit-log | \
                --etcd-ca | --etcd-cert | --etcd-key | --etcd-auth-file)
                compopt -o filenames 2>/dev/null
                mapfile -t COMPREPLY < <(compgen -f -- "$cur")
                return
                ;;
        --state-dir | --plugin-dir | --cache-dir)
                compopt -o filenames 2>/dev/null
                mapfile -t COMPREPLY < <(compgen -d -- "$cur")
                return
                ;;
        --log-level)
                mapfile -t COMPREPLY < <(compgen -W "error warn info debug" -- "$cur")
                return
                ;;
        --seccomp)
                mapfile -t COMPREPLY < <(compgen -W "yes no" -- "$cur")
                return
                ;;
        --on-unverifiable)
                mapfile -t COMPREPLY < <(compgen -W "previous refuse" -- "$cur")
                return
                ;;
        --store | --realm | --driver | --default-size | --max-size | --max-volumes | --max-instances-per-volume | \
                --max-inodes | --max-total-tmpfs | --connection-timeout)
                return
                ;;
        esac

        if [[ $COMP_CWORD -eq 1 && $cur != -* ]]; then
                mapfile -t COMPREPLY < <(compgen -W "$(_secretd_verbs)" -- "$cur")
        elif [[ $cur == -* ]]; then
                local extra=""
                [[ $COMP_CWORD -eq 1 ]] && extra="--version"
                mapfile -t COMPREPLY < <(compgen -W "$(_secretd_options "$verb") $extra" -- "$cur")
        fi
}

complete -F _secretd secretd
