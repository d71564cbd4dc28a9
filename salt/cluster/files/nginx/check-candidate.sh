#!/bin/sh
# Managed by Salt (saltcluster) - changes here are overwritten.
#
# saltcluster-nginx-check CONFIG SITE_DIR TARGET CANDIDATE
#
# Checks CANDIDATE, the new content of one of nginx's files, together with
# the live files it will sit among, before it replaces the live one.  Salt's
# file.managed runs it as check_cmd (which appends CANDIDATE) and keeps the
# live file when it exits non-zero.
#
#   CONFIG    the live nginx.conf, an absolute path
#   SITE_DIR  the directory of site files that CONFIG includes, named
#             relative to CONFIG's directory
#   TARGET    the file CANDIDATE is to replace, relative to CONFIG's
#             directory: nginx.conf itself, or SITE_DIR/<site>.conf
#
# A staging directory gets a copy of CONFIG and of SITE_DIR/*.conf as they
# are live, then CANDIDATE in the place of TARGET, and `nginx -t -c` runs on
# the staged nginx.conf.  Its include of SITE_DIR is relative, and nginx
# resolves a relative include from the directory of the file -c names, so
# the check reads the staged site files: the candidate with the other roles'
# live sites.  Nothing outside the staging directory is written.
set -eu
if [ $# -ne 4 ]; then
    echo "usage: $0 CONFIG SITE_DIR TARGET CANDIDATE" >&2
    exit 2
fi
config=$1 site_dir=$2 target=$3 candidate=$4
case "/$site_dir/ /$target/" in
    */../*)
        echo "$0: '..' in SITE_DIR or TARGET: $site_dir $target" >&2
        exit 2
        ;;
esac
live_dir=$(dirname -- "$config")
name=$(basename -- "$config")

stage=$(mktemp -d "${TMPDIR:-/tmp}/saltcluster-nginx.XXXXXX")
trap 'rm -rf -- "$stage"' EXIT
mkdir -p -- "$stage/$site_dir"
if [ -e "$config" ]; then
    cp -- "$config" "$stage/$name"
fi
for site in "$live_dir/$site_dir"/*.conf; do
    if [ -e "$site" ]; then
        cp -- "$site" "$stage/$site_dir/"
    fi
done
cp -- "$candidate" "$stage/$target"
nginx -t -q -c "$stage/$name"
