#!/bin/sh
# A streaming replica of a local PostgreSQL cluster, on Debian or Ubuntu, as root.
# The replica tests build theirs with this script. Defaults: a replica of 15/main on port 5433.
set -eu
VERSION=${VERSION:-15}
PRIMARY=${PRIMARY:-main}
PRIMARY_PORT=${PRIMARY_PORT:-5432}
REPLICA=${REPLICA:-replica}
REPLICA_PORT=${REPLICA_PORT:-5433}
DATA=/var/lib/postgresql/$VERSION/$REPLICA
ETC=/etc/postgresql/$VERSION

# 1. Copy the primary's data: -R writes standby.signal and primary_conninfo (streaming).
#    Debian's defaults allow it: wal_level=replica, max_wal_senders=10, and a "replication"
#    line for 127.0.0.1 in pg_hba.conf.
install -d -o postgres -g postgres -m 700 "$DATA"
runuser -u postgres -- pg_basebackup -R -X stream -c fast \
    -D "$DATA" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres

# 2. Register it as a cluster: the primary's configuration, with its own name and port.
cp -r "$ETC/$PRIMARY" "$ETC/$REPLICA"
sed -i -e "s#$VERSION/$PRIMARY#$VERSION/$REPLICA#g" \
    -e "s#$VERSION-$PRIMARY.pid#$VERSION-$REPLICA.pid#" \
    -e "s/^port = .*/port = $REPLICA_PORT/" "$ETC/$REPLICA/postgresql.conf"
chown -R postgres:postgres "$ETC/$REPLICA"

# 3. Start it. It answers read-only queries; `pg_ctlcluster $VERSION $REPLICA promote`
#    turns it into a primary, `pg_dropcluster --stop $VERSION $REPLICA` removes it.
pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$REPLICA" start
