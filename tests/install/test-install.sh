#!/bin/bash
# What `meson install` puts on a host (docs/agent.md "Installing"), checked
# on a scratch --destdir of this build:
#   - the exact file list, at the configured prefix's paths;
#   - secretd.service names the installed secretd and configuration, and
#     `systemd-analyze verify` is clean on both units (and not on a unit
#     whose ExecStart is wrong: the check can fail);
#   - an existing configuration survives a reinstall;
#   - every man page renders with no groff warning and has a NAME lexgrog
#     can parse, and each names what --help names;
#   - bash completion completes verbs, subverbs, options and secret names
#     when driven through COMP_WORDS, and the completion files (bash and
#     zsh) list exactly the verbs and options --help lists;
#   - a fresh setup with --prefix=/usr installs to /usr/sbin, /etc/secretd,
#     /usr/lib/systemd/system (meson introspect, no build needed).
# TAP output; no root, no daemons.  SECRETD_TEST_KEEP=1 keeps the scratch dir.
set -euo pipefail
export LC_ALL=C

: "${SECRETD_BUILD_ROOT:?meson sets SECRETD_BUILD_ROOT}"
: "${SECRETD_SOURCE_ROOT:?meson sets SECRETD_SOURCE_ROOT}"
: "${SECRETCTL:?}" "${SECRETD:?}"
: "${SECRETD_INSTALL_PREFIX:?}" "${SECRETD_INSTALL_BINDIR:?}" "${SECRETD_INSTALL_SBINDIR:?}"
: "${SECRETD_INSTALL_SYSCONFDIR:?}" "${SECRETD_INSTALL_UNITDIR:?}" "${SECRETD_INSTALL_DOCDIR:?}"
: "${SECRETD_INSTALL_MANDIR:?}" "${SECRETD_INSTALL_BASHCOMPDIR:?}" "${SECRETD_INSTALL_ZSHCOMPDIR:?}"
man_pages=${SECRETD_INSTALL_MAN_PAGES:-}

tap_n=0 tap_failed=0
ok() { tap_n=$((tap_n + 1)); echo "ok $tap_n - $*"; }
not_ok() {
    local desc=$1
    shift
    tap_n=$((tap_n + 1)) tap_failed=$((tap_failed + 1))
    echo "not ok $tap_n - $desc"
    local l
    for l in "$@"; do printf '%s\n' "$l" | sed 's/^/# /' >&2; done
}
skip() { tap_n=$((tap_n + 1)); echo "ok $tap_n - $1 # SKIP $2"; }
assert_eq() {
    if [ "$1" == "$2" ]; then ok "$3"; else not_ok "$3" "expected: $2" "  actual: $1"; fi
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/secretd-install.XXXXXXXX")
cleanup() {
    local rc=$?
    if [ "${SECRETD_TEST_KEEP:-0}" = 1 ]; then
        echo "# kept $scratch" >&2
    else
        rm -rf "$scratch"
    fi
    echo "1..$tap_n"
    [ "$tap_failed" = 0 ] || rc=1
    exit "$rc"
}
trap cleanup EXIT

dest=$scratch/dest
log=$scratch/install.log
if meson install -C "$SECRETD_BUILD_ROOT" --no-rebuild --destdir "$dest" >"$log" 2>&1; then
    ok "meson install --destdir"
else
    not_ok "meson install --destdir" "$(tail -20 "$log")"
    exit 1
fi

# ------------------------------------------------------------ file list ---
expected=(
    "$SECRETD_INSTALL_BINDIR/secretctl"
    "$SECRETD_INSTALL_SBINDIR/secretd"
    "$SECRETD_INSTALL_UNITDIR/secretd.service"
    "$SECRETD_INSTALL_UNITDIR/secretd.socket"
    "$SECRETD_INSTALL_SYSCONFDIR/secretd/secretd.conf"
    "$SECRETD_INSTALL_BASHCOMPDIR/secretctl"
    "$SECRETD_INSTALL_BASHCOMPDIR/secretd"
    "$SECRETD_INSTALL_ZSHCOMPDIR/_secretctl"
    "$SECRETD_INSTALL_ZSHCOMPDIR/_secretd"
    "$SECRETD_INSTALL_DOCDIR/README.md"
)
# Every page of docs/: a page added there but not to docs/meson.build fails.
for f in "$SECRETD_SOURCE_ROOT"/docs/*.md; do
    expected+=("$SECRETD_INSTALL_DOCDIR/$(basename "$f")")
done
for p in $man_pages; do
    expected+=("$SECRETD_INSTALL_MANDIR/man${p##*.}/$p")
done
want=$(printf '%s\n' "${expected[@]}" | sort)
got=$(cd "$dest" && find . \( -type f -o -type l \) -printf '/%P\n' | sort)
if [ "$got" == "$want" ]; then
    ok "installed files are exactly the expected ${#expected[@]}"
else
    not_ok "installed files are exactly the expected ${#expected[@]}" \
        "missing: $(comm -13 <(echo "$got") <(echo "$want") | tr '\n' ' ')" \
        "unexpected: $(comm -23 <(echo "$got") <(echo "$want") | tr '\n' ' ')"
fi
if [ -z "$man_pages" ]; then
    skip "man pages" "built without lowdown (-Dman)"
fi

mode() { stat -c %a "$dest$1"; }
assert_eq "$(mode "$SECRETD_INSTALL_SBINDIR/secretd") $(mode "$SECRETD_INSTALL_BINDIR/secretctl")" "755 755" \
    "both programs are executable"
assert_eq "$(mode "$SECRETD_INSTALL_SYSCONFDIR/secretd") $(mode "$SECRETD_INSTALL_SYSCONFDIR/secretd/secretd.conf")" \
    "700 644" "the configuration directory is 0700 (as secretd init makes it), the file 0644"
if cmp -s "$dest$SECRETD_INSTALL_SYSCONFDIR/secretd/secretd.conf" "$SECRETD_SOURCE_ROOT/examples/secretd.conf"; then
    ok "secretd.conf is examples/secretd.conf"
else
    not_ok "secretd.conf is examples/secretd.conf"
fi

# ---------------------------------------------------------------- units ---
unit=$dest$SECRETD_INSTALL_UNITDIR/secretd.service
assert_eq "$(sed -n 's/^ExecStart=//p' "$unit")" \
    "$SECRETD_INSTALL_SBINDIR/secretd run --config $SECRETD_INSTALL_SYSCONFDIR/secretd/secretd.conf" \
    "secretd.service starts the installed secretd with the installed configuration"
assert_eq "$(grep -E '^(Requires|After|Sockets)=secretd\.socket$' "$unit" | sort | tr '\n' ' ')" \
    "After=secretd.socket Requires=secretd.socket Sockets=secretd.socket " \
    "secretd.service requires, follows and takes secretd.socket"
assert_eq "$(sed -n 's/^ListenStream=//p' "$dest$SECRETD_INSTALL_UNITDIR/secretd.socket" | tr '\n' ' ')" \
    "/run/docker/plugins/secretd.sock /run/secretd/admin.sock " \
    "secretd.socket listens on the default plugin and admin sockets"
if "$dest$SECRETD_INSTALL_SBINDIR/secretd" run --config "$dest$SECRETD_INSTALL_SYSCONFDIR/secretd/secretd.conf" \
    --help >/dev/null 2>&1; then
    ok "the installed secretd accepts the unit's command line"
else
    not_ok "the installed secretd accepts the unit's command line"
fi

if command -v systemd-analyze >/dev/null; then
    # systemd-analyze --root resolves the units' dependencies (sysinit.target
    # ...) and ExecStart inside the root: the host's units plus the install.
    root=$scratch/root
    mkdir -p "$root/usr/lib/systemd"
    cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
    cp -a "$dest/." "$root/"
    # ExecReload= runs the host's /bin/kill (procps), which is not ours to install.
    mkdir -p "$root/bin"
    cp /bin/kill "$root/bin/kill"
    units=("$SECRETD_INSTALL_UNITDIR/secretd.socket" "$SECRETD_INSTALL_UNITDIR/secretd.service")
    if out=$(systemd-analyze verify --man=no --root="$root" "${units[@]}" 2>&1) && [ -z "$out" ]; then
        ok "systemd-analyze verify is clean on secretd.service and secretd.socket"
    else
        not_ok "systemd-analyze verify is clean on secretd.service and secretd.socket" "$out"
    fi
    sed -i "s#^ExecStart=$SECRETD_INSTALL_SBINDIR/#ExecStart=/nonexistent/#" "$root$SECRETD_INSTALL_UNITDIR/secretd.service"
    if out=$(systemd-analyze verify --man=no --root="$root" "${units[@]}" 2>&1); then
        not_ok "control: systemd-analyze verify fails for an ExecStart that is not installed" "$out"
    else
        ok "control: systemd-analyze verify fails for an ExecStart that is not installed"
    fi
else
    skip "systemd-analyze verify" "systemd-analyze not installed"
fi

# A second install keeps an edited configuration.
conf=$dest$SECRETD_INSTALL_SYSCONFDIR/secretd/secretd.conf
printf '[secretd]\nlog-level = debug\n' >"$conf"
if meson install -C "$SECRETD_BUILD_ROOT" --no-rebuild --destdir "$dest" >"$log" 2>&1 &&
    [ "$(cat "$conf")" = $'[secretd]\nlog-level = debug' ]; then
    ok "a reinstall keeps an existing secretd.conf"
else
    not_ok "a reinstall keeps an existing secretd.conf" "$(cat "$conf")" "$(tail -5 "$log")"
fi

# ------------------------------------------------------------ man pages ---
for p in $man_pages; do
    page=$dest$SECRETD_INSTALL_MANDIR/man${p##*.}/$p
    if MANWIDTH=80 man --warnings=w -l "$page" >"$scratch/$p.txt" 2>"$scratch/$p.err" && [ ! -s "$scratch/$p.err" ]; then
        ok "man $p renders at 80 columns with no groff warning"
    else
        not_ok "man $p renders at 80 columns with no groff warning" "$(head -20 "$scratch/$p.err")"
    fi
    name=${p%.*}
    if out=$(lexgrog "$page" 2>&1) && [[ "$out" == *": \"$name - "* ]]; then
        ok "man $p has a NAME line apropos can read ($out)"
    else
        not_ok "man $p has a NAME line apropos can read" "$out"
    fi
done
# The pages are the docs: what --help names, the page names.
help_verbs() { "$SECRETCTL" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z-]*\) .*/\1/p' | grep -vx help; }
if [[ " $man_pages " == *" secretctl.1 "* ]]; then
    missing=""
    for v in $(help_verbs); do
        grep -q "^   *$v\$" "$scratch/secretctl.1.txt" || missing+=" $v"
    done
    assert_eq "$missing" "" "secretctl(1) has a section for every command of secretctl --help"
fi
if [[ " $man_pages " == *" secretd.conf.5 "* ]]; then
    missing=""
    for o in $("$SECRETD" run --help | grep -o '^  --[a-z-]*' | sed 's/^  --//' | grep -vx -e config -e help); do
        grep -q "^       $o\$" "$scratch/secretd.conf.5.txt" || missing+=" $o"
    done
    assert_eq "$missing" "" "secretd.conf(5) has an entry for every option of secretd run --help"
fi

# docs/secretctl.md is secretctl(1): each verb's section there names every
# option its --help lists, and its synopsis names no option --help lacks.
# (The page's sections for every verb are checked above on the rendered
# man page.)
md=$SECRETD_SOURCE_ROOT/docs/secretctl.md
md_section() {
    awk -v h="### $1" '$0 == h { on = 1; next } on && /^##/ { exit } on { print }' "$md"
}
# The first code block of a section: its synopsis.
md_synopsis() {
    md_section "$1" | awk '/^```/ { if (on) exit; on = 1; next } on { print }'
}
help_opts() {
    "$SECRETCTL" "$1" --help | { grep -Eo '^ +(-[a-zA-Z], )?--[a-z][a-z-]*' || true; } |
        { grep -Eo -- '--[a-z-]+' || true; } | { grep -vx -- --help || true; } | sort -u
}
undocumented="" unknown=""
for v in $(help_verbs) trust; do
    section=$(md_section "$v")
    if [ -z "$section" ]; then
        undocumented+=" $v:(no section)"
        continue
    fi
    for o in $(help_opts "$v"); do
        grep -qE -- "(^|[^a-z-])$o([^a-z-]|\$)" <<<"$section" || undocumented+=" $v:$o"
    done
    want=$(help_opts "$v")
    for o in $(md_synopsis "$v" | { grep -Eo -- '--[a-z][a-z-]*' || true; } | sort -u); do
        # The global options come before the verb; every verb takes --help.
        case $o in --store | --identity | --help) continue ;; esac
        grep -qx -- "$o" <<<"$want" || unknown+=" $v:$o"
    done
done
assert_eq "$undocumented" "" "docs/secretctl.md documents every option of every secretctl VERB --help in its section"
assert_eq "$unknown" "" "every option of a synopsis in docs/secretctl.md is one --help lists"
main_opts=$("$SECRETCTL" --help | sed -n '/^Global options/,/^$/p' | grep -Eo -- '--[a-z-]+' | sort -u)
doc_opts=$(md_section_global() { awk '$0 == "## Global options" { on = 1; next } on && /^## / { exit } on { print }' "$md"; }
    md_section_global | grep -E '^`-' | grep -Eo -- '`--[a-z-]+`' | tr -d '`' | sort -u)
assert_eq "$doc_opts" "$main_opts" "docs/secretctl.md's global options are those of secretctl --help"

# ----------------------------------------------------------- completion ---
bash_comp=$dest$SECRETD_INSTALL_BASHCOMPDIR
zsh_comp=$dest$SECRETD_INSTALL_ZSHCOMPDIR
# complete FILE FUNCTION WORD...: what FUNCTION offers for the last WORD (the
# one being typed), one per line, sorted.  PATH finds the built secretctl.
complete_words() {
    local file=$1 fn=$2
    shift 2
    PATH=$(dirname "$SECRETCTL"):$PATH bash --norc --noprofile -c '
        file=$1 fn=$2; shift 2
        source "$file"
        COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        "$fn" 2>/dev/null
        printf "%s\n" "${COMPREPLY[@]}"' _ "$file" "$fn" "$@" | sed '/^$/d' | sort
}
lines() { printf '%s\n' "$@" | sort; }
# bash_call FILE FUNCTION ARG...: what FUNCTION prints, one word per line, sorted.
bash_call() {
    bash --norc --noprofile -c 'source "$1"; shift; "$@"' _ "$@" | tr ' ' '\n' | sed '/^$/d' | sort
}

assert_eq "$(complete_words "$bash_comp/secretctl" _secretctl secretctl "")" \
    "$(lines $(help_verbs) help)" "bash: secretctl TAB offers every command of secretctl --help"
assert_eq "$(complete_words "$bash_comp/secretctl" _secretctl secretctl --store file:///x rec)" \
    "recipient" "bash: secretctl --store URL rec TAB completes 'recipient'"
assert_eq "$(complete_words "$bash_comp/secretctl" _secretctl secretctl writer "")" \
    "$(lines add ls rm)" "bash: secretctl writer TAB offers add ls rm"
assert_eq "$(complete_words "$bash_comp/secretctl" _secretctl secretctl recipient a)" \
    "add" "bash: secretctl recipient a TAB completes 'add'"
assert_eq "$(complete_words "$bash_comp/secretctl" _secretctl secretctl put --f)" \
    "--file" "bash: secretctl put --f TAB completes '--file'"
assert_eq "$(complete_words "$bash_comp/secretctl" _secretctl secretctl help hi)" \
    "history" "bash: secretctl help hi TAB completes 'history'"
assert_eq "$(complete_words "$bash_comp/secretd" _secretd secretd "")" \
    "$(lines check init join pubkey run)" "bash: secretd TAB offers check init join pubkey run"
assert_eq "$(complete_words "$bash_comp/secretd" _secretd secretd --log-level "")" \
    "$(lines debug error info warn)" "bash: secretd --log-level TAB offers the levels"

# Secret names come from the store named on the line.
export XDG_CONFIG_HOME=$scratch/config
mkdir -m 0700 "$XDG_CONFIG_HOME"
store=file://$scratch/store
"$SECRETCTL" keygen >/dev/null 2>&1
# A recipient on the empty store makes its realm (you its admin), so puts work.
"$SECRETD" init --key "$scratch/agent.key" >/dev/null 2>&1
"$SECRETCTL" --store "$store" recipient add host "$("$SECRETD" pubkey --key "$scratch/agent.key")" >/dev/null 2>&1
printf x | "$SECRETCTL" --store "$store" put db_password >/dev/null 2>&1
printf x | "$SECRETCTL" --store "$store" put api_key >/dev/null 2>&1
assert_eq "$(complete_words "$bash_comp/secretctl" _secretctl secretctl --store "$store" get "")" \
    "$(lines api_key db_password)" "bash: secretctl --store URL get TAB offers the store's secrets"

# Each verb's options in the completion are those its --help lists.
# Every verb takes --help, whether or not its help says so: left out.
help_options() {
    "$@" --help | { grep -Eo '^ +(-[a-zA-Z], )?--[a-z][a-z-]*' || true; } | grep -Eo -- '--[a-z-]+' |
        { grep -vx -- --help || true; } | sort -u
}
completion_options() { bash_call "$@" | { grep -vx -- --help || true; }; }
# The lowercase word after VERB in the Usage lines (its subverbs).
help_subverbs() {
    "$SECRETCTL" "$1" --help | sed -n '1,/^$/p' |
        sed -En 's/^(Usage:)? +secretctl (\[[^]]*\] )*'"$1"' ([a-z]+).*/\3/p' | sort -u
}
# zsh_block FILE LABEL: the lines of one case branch "LABEL)" ... ";;", or of
# one array "LABEL=(" ... ")".
zsh_block() {
    awk -v l="$2" '
        $0 ~ "^ *(" l "|[a-z|-]*[|]" l ")[)]$" || $0 ~ "^ *" l "=[(]$" { on = 1; next }
        on && ($0 ~ /^ *;;$/ || $0 ~ /^ *[)]$/) { exit }
        on { print }' "$1"
}
zsh_options() { zsh_block "$@" | { grep -Eo -- "--[a-z][a-z-]*" || true; } | { grep -vx -- --help || true; } | sort -u; }
drift=""
for v in $(help_verbs); do
    want=$(help_options "$SECRETCTL" "$v")
    [ "$(completion_options "$bash_comp/secretctl" _secretctl_options "$v")" == "$want" ] ||
        drift+=" bash:$v"
    [ "$(zsh_options "$zsh_comp/_secretctl" "$v")" == "$want" ] || drift+=" zsh:$v"
    [ "$(bash_call "$bash_comp/secretctl" _secretctl_subverbs "$v")" == "$(help_subverbs "$v")" ] ||
        drift+=" bash-subverbs:$v"
done
assert_eq "$drift" "" "bash and zsh completion list exactly the options (and subverbs) of every secretctl VERB --help"
zsh_verbs=$(zsh_block "$zsh_comp/_secretctl" verbs | sed -n "s/^ *'\([a-z-]*\):.*/\1/p" | sort)
assert_eq "$zsh_verbs" "$(lines $(help_verbs) help)" "zsh completion lists exactly the commands of secretctl --help"

secretd_verbs=$("$SECRETD" --help | sed -n '/^Verbs:/,/^$/s/^  \([a-z-]*\) .*/\1/p' | sort)
assert_eq "$(bash_call "$bash_comp/secretd" _secretd_verbs)" "$secretd_verbs" \
    "bash completion lists exactly the verbs of secretd --help"
assert_eq "$(zsh_block "$zsh_comp/_secretd" verbs | sed -n "s/^ *'\([a-z-]*\):.*/\1/p" | sort)" "$secretd_verbs" \
    "zsh completion lists exactly the verbs of secretd --help"
drift=""
for v in $secretd_verbs; do
    want=$(help_options "$SECRETD" "$v")
    [ "$(completion_options "$bash_comp/secretd" _secretd_options "$v")" == "$want" ] || drift+=" bash:$v"
    [ "$(zsh_options "$zsh_comp/_secretd" "$v")" == "$want" ] || drift+=" zsh:$v"
done
assert_eq "$drift" "" "bash and zsh completion list exactly the options of every secretd VERB --help"

if command -v zsh >/dev/null; then
    if out=$(zsh -n "$zsh_comp/_secretctl" 2>&1 && zsh -n "$zsh_comp/_secretd" 2>&1); then
        ok "zsh parses both completion files"
    else
        not_ok "zsh parses both completion files" "$out"
    fi
else
    skip "zsh parses both completion files" "zsh not installed"
fi

# --------------------------------------------------- prefix /usr layout ---
usr_build=$scratch/build-usr
if meson setup --prefix=/usr "$usr_build" "$SECRETD_SOURCE_ROOT" >"$log" 2>&1; then
    installed=$(meson introspect --installed "$usr_build" | python3 -c '
import json, sys
print("\n".join(sorted(json.load(sys.stdin).values())))')
    want_usr=(/usr/bin/secretctl /usr/sbin/secretd /usr/lib/systemd/system/secretd.service
        /usr/lib/systemd/system/secretd.socket /usr/share/bash-completion/completions/secretctl
        /usr/share/zsh/vendor-completions/_secretctl /usr/share/doc/secretd/README.md)
    missing=""
    for f in "${want_usr[@]}"; do
        grep -qx "$f" <<<"$installed" || missing+=" $f"
    done
    assert_eq "$missing" "" "prefix /usr: programs, units, completion and docs go to the distribution's paths"
    assert_eq "$(sed -n 's/^ExecStart=//p' "$usr_build/examples/secretd.service")" \
        "/usr/sbin/secretd run --config /etc/secretd/secretd.conf" \
        "prefix /usr: the unit runs /usr/sbin/secretd with /etc/secretd/secretd.conf (where the config is installed)"
else
    not_ok "meson setup --prefix=/usr" "$(tail -20 "$log")"
fi
