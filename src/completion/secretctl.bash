# bash completion for secretctl(1)
#
# Verbs, subverbs and options are those `secretctl --help` and
# `secretctl VERB --help` list: tests/install/test-install.sh compares them
# with the functions below, so a verb or option added to secretctl without
# being added here fails the tests.  Secret names (get, history, rm, put)
# come from `secretctl ls --json` against the store given on the line.

_secretctl_verbs() {
        echo keygen whoami put get ls history rm realm writer recipient admin reseal export import status import-env compose help
}

# The subverbs of a verb, if it has any.
_secretctl_subverbs() {
        case $1 in
        realm) echo init show pin join sign ;;
        writer | recipient | admin) echo add rm ls ;;
        compose) echo migrate ;;
        esac
}

# Every long option of a verb (of all its subverbs).
_secretctl_options() {
        case $1 in
        keygen) echo --force --quiet --help ;;
        whoami) echo --help ;;
        rm | export) echo --quiet --help ;;
        put) echo --file --max-size --quiet --help ;;
        get) echo --version --force-tty --help ;;
        ls | history) echo --json --help ;;
        realm) echo --name --json --discard --quiet --help ;;
        writer | recipient) echo --pattern --json --quiet --help ;;
        admin) echo --threshold --json --quiet --help ;;
        reseal) echo --all --dry-run --quiet --help ;;
        import) echo --pin --quiet --help ;;
        status) echo --json --admin-socket --config --help ;;
        import-env) echo --only --lowercase --quiet --help ;;
        compose) echo --file --env-file --output --var --skip --uid --mode --driver --dry-run --help ;;
        esac
}

# What follows an option of a verb ("" for the global options): "file", a
# free "word", or nothing ("none").
_secretctl_option_argument() {
        case $1:$2 in
        :-s | :--store) echo word ;;
        :-i | :--identity | :--etcd-ca | :--etcd-cert | :--etcd-key | :--etcd-auth-file) echo file ;;
        put:--file | status:--admin-socket | status:--config | compose:-f | compose:--file | compose:--env-file | compose:-o | compose:--output)
                echo file ;;
        export:-* | import:-*) echo none ;;
        put:--max-size | get:--version | realm:--name | writer:--pattern | recipient:--pattern | \
                admin:--threshold | import:--pin | import-env:--only | compose:--var | compose:--skip | \
                compose:--uid | compose:--mode | compose:--driver)
                echo word ;;
        *) echo none ;;
        esac
}

_secretctl_secret_names() {
        secretctl "$@" ls --json 2>/dev/null | sed -n 's/^ *"name": *"\([^"]*\)".*/\1/p'
}

_secretctl() {
        local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
        local i word verb="" verb_at=0 store=()
        COMPREPLY=()

        for ((i = 1; i < COMP_CWORD; i++)); do
                word=${COMP_WORDS[i]}
                case $word in
                -s | --store)
                        store=(--store "${COMP_WORDS[i + 1]}")
                        i=$((i + 1))
                        ;;
                -i | --identity | --etcd-ca | --etcd-cert | --etcd-key | --etcd-auth-file) i=$((i + 1)) ;;
                -*) ;;
                *)
                        verb=$word
                        verb_at=$i
                        break
                        ;;
                esac
        done

        case $(_secretctl_option_argument "$verb" "$prev") in
        file)
                compopt -o filenames 2>/dev/null
                mapfile -t COMPREPLY < <(compgen -f -- "$cur")
                return
                ;;
        word) return ;;
        esac

        if [[ -z $verb ]]; then
                if [[ $cur == -* ]]; then
                        mapfile -t COMPREPLY < <(compgen -W "--store --identity --etcd-ca --etcd-cert --etcd-key --etcd-auth-file --help --version" -- "$cur")
                else
                        mapfile -t COMPREPLY < <(compgen -W "$(_secretctl_verbs)" -- "$cur")
                fi
                return
        fi
        if [[ $cur == -* ]]; then
                mapfile -t COMPREPLY < <(compgen -W "$(_secretctl_options "$verb")" -- "$cur")
                return
        fi

        # The positional arguments after the verb, options and their
        # arguments left out.
        local args=()
        for ((i = verb_at + 1; i < COMP_CWORD; i++)); do
                word=${COMP_WORDS[i]}
                if [[ $word == -* ]]; then
                        [[ $(_secretctl_option_argument "$verb" "$word") == none ]] || i=$((i + 1))
                        continue
                fi
                args+=("$word")
        done

        local subverbs
        subverbs=$(_secretctl_subverbs "$verb")
        if [[ -n $subverbs && ${#args[@]} -eq 0 ]]; then
                mapfile -t COMPREPLY < <(compgen -W "$subverbs" -- "$cur")
                return
        fi
        case $verb:${#args[@]} in
        help:0) mapfile -t COMPREPLY < <(compgen -W "$(_secretctl_verbs) environment" -- "$cur") ;;
        get:0 | history:0 | rm:0 | put:0 | reseal:*)
                mapfile -t COMPREPLY < <(compgen -W "$(_secretctl_secret_names "${store[@]}")" -- "$cur")
                ;;
        import-env:0 | export:0 | import:0)
                compopt -o filenames 2>/dev/null
                mapfile -t COMPREPLY < <(compgen -f -- "$cur")
                ;;
        esac
}

complete -F _secretctl secretctl
