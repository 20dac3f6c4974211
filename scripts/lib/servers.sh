# Private database servers on loopback for tests and benchmarks, from Debian's packages: each gets
# its own folder, free ports and no system service. Source this file, then call
#   start_clickhouse DIR   -> CH_PID, CH_HTTP_PORT, CH_URL (clickhouse://127.0.0.1:PORT/music)
#   start_mariadb DIR      -> MARIA_PID, MARIA_PORT, MARIA_SOCK, MARIA_VERSION, MARIA_LOADER, MARIA_URL
#                             (a loader user with write rights, a SELECT-only reader)
#   stop_servers           -> kills what was started
# A start that cannot happen returns 1 with the reason in SERVER_ERROR (callers skip with it).
# Packages are installed with apt-get when missing (as root, or with passwordless sudo).

PATH=$PATH:/usr/sbin:/sbin
SERVER_ERROR=""
_server_pids=()

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ensure_command COMMAND PACKAGE LOG
ensure_command() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { SERVER_ERROR="$2 is not installed and there is no root or sudo to install it"; return 1; }
    sudo="sudo -n"
  fi
  echo "installing $2 (apt-get)"
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$2" >"$3" 2>&1; then
    SERVER_ERROR="apt-get install $2 failed: $(tail -2 "$3" | tr '\n' ' ')"
    return 1
  fi
  command -v "$1" >/dev/null 2>&1 || { SERVER_ERROR="$1 still missing after apt-get install $2"; return 1; }
}

start_clickhouse() {
  local d=$1
  mkdir -p "$d/data" "$d/tmp" "$d/user_files" "$d/format_schemas"
  ensure_command clickhouse-server clickhouse-server "$d/apt.log" || return 1
  CH_HTTP_PORT=$(free_port)
  local tcp_port
  tcp_port=$(free_port)
  cat >"$d/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$d/server.log</log><errorlog>$d/server.err.log</errorlog><console>0</console></logger>
  <http_port>$CH_HTTP_PORT</http_port>
  <tcp_port>$tcp_port</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$d/data/</path>
  <tmp_path>$d/tmp/</tmp_path>
  <user_files_path>$d/user_files/</user_files_path>
  <format_schema_path>$d/format_schemas/</format_schema_path>
  <users_config>$d/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
</yandex>
XML
  cat >"$d/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
XML
  clickhouse-server --config-file="$d/config.xml" >"$d/stdout" 2>&1 &
  CH_PID=$!
  _server_pids+=("$CH_PID")
  local _
  for _ in $(seq 1 60); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$CH_HTTP_PORT/ping', timeout=1)" 2>/dev/null; then
      CH_URL="clickhouse://127.0.0.1:$CH_HTTP_PORT/music"
      return 0
    fi
    kill -0 "$CH_PID" 2>/dev/null || break
    sleep 0.5
  done
  SERVER_ERROR="clickhouse-server did not start: $(tail -3 "$d/stdout" "$d/server.err.log" 2>/dev/null | tr '\n' ' ')"
  return 1
}

maria_sql() { mariadb --no-defaults -S "$MARIA_SOCK" -u root "$@"; }

start_mariadb() {
  local d=$1
  mkdir -p "$d"
  { ensure_command mariadbd mariadb-server "$d/apt.log" && ensure_command mariadb-install-db mariadb-server "$d/apt.log"; } || return 1
  MARIA_PORT=$(free_port)
  MARIA_SOCK=$d/sock
  local user_opt=()
  [[ $(id -u) -eq 0 ]] && user_opt=(--user=root)
  mariadb-install-db --no-defaults --datadir="$d/data" "${user_opt[@]}" --auth-root-authentication-method=normal \
    --skip-test-db >"$d/install.log" 2>&1 || { SERVER_ERROR="mariadb-install-db failed: $(tail -2 "$d/install.log" | tr '\n' ' ')"; return 1; }
  mariadbd --no-defaults --datadir="$d/data" --socket="$MARIA_SOCK" --port="$MARIA_PORT" --bind-address=127.0.0.1 \
    --pid-file="$d/pid" --skip-log-bin "${user_opt[@]}" >"$d/server.log" 2>&1 &
  MARIA_PID=$!
  _server_pids+=("$MARIA_PID")
  local up=0 _
  for _ in $(seq 1 60); do
    if maria_sql -e "SELECT 1" >/dev/null 2>&1; then up=1; break; fi
    kill -0 "$MARIA_PID" 2>/dev/null || break
    sleep 0.5
  done
  [[ $up -eq 1 ]] || { SERVER_ERROR="mariadbd did not start: $(tail -3 "$d/server.log" | tr '\n' ' ')"; return 1; }
  maria_sql -e "CREATE USER 'loader'@'127.0.0.1' IDENTIFIED BY 'load pw'; GRANT ALL ON music.* TO 'loader'@'127.0.0.1';
          CREATE USER 'reader'@'127.0.0.1' IDENTIFIED BY 'read'; GRANT SELECT ON music.* TO 'reader'@'127.0.0.1';" \
    || { SERVER_ERROR="cannot create the loader and reader users"; return 1; }
  MARIA_VERSION=$(maria_sql -N -e "SELECT VERSION()")
  MARIA_LOADER="mysql://loader:load%20pw@127.0.0.1:$MARIA_PORT/music"
  MARIA_URL="mysql://reader:read@127.0.0.1:$MARIA_PORT/music"
}

stop_servers() {
  local p
  for p in "${_server_pids[@]}"; do
    kill "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  _server_pids=()
}
