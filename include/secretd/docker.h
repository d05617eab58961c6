/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Docker Engine API client (design.md point 4), for the agent's lifecycle
 * work: the events stream says which container holds which secret mount
 * (volume `mount` events) and when it goes (container `die`/`destroy`);
 * the container list and inspect reconcile after a reconnect; kill delivers
 * the reload signal after a rotation.
 *
 * Two layers:
 *
 *   - Pure parsers (no I/O, no allocation beyond their outputs) for event
 *     lines, the container list, container inspect, error bodies, signal
 *     names.  Everything dockerd
 *     says is treated as hostile input: strings are bounded, ids are checked
 *     (a container id is 64 lowercase hex digits), numbers must be integers
 *     in range, duplicate JSON keys are refused.  A failure is -EBADMSG with a
 *     message naming the field ("docker event: field 'Actor.ID': ...").
 *     The stream's line splitter is struct sd_line_buffer (secretd/http.h).
 *
 *   - I/O over dockerd's unix socket through the one HTTP transport
 *     (secretd/http.h), API version /v1.41 (Docker 20.10; every later engine
 *     still serves it).
 *
 * Everything here follows error.h: negative errno on failure, *err filled,
 * outputs untouched on failure, nothing printed.
 *
 * Threads: a struct sd_docker is immutable once sd_docker_set_timeouts() has
 * been called (if at all), and its requests go through the thread-safe
 * transport of secretd/http.h, so one client may be shared by threads:
 * typically one thread sits in sd_docker_events_run() while another calls
 * sd_docker_kill().  The parsers are reentrant.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secretd/cleanup.h"
#include "secretd/error.h"
#include "secretd/http.h"

#define SD_DOCKER_DEFAULT_SOCKET "/var/run/docker.sock"
#define SD_DOCKER_API_VERSION "v1.41"

/* sun_path holds 108 bytes including the NUL. */
#define SD_DOCKER_SOCKET_PATH_MAX 107

/* The container label naming the signal to send after a rotation. */
#define SD_DOCKER_RELOAD_SIGNAL_LABEL "secretd.reload-signal"

/* Bounds on what the parsers accept (lengths exclude the NUL). */
#define SD_DOCKER_CONTAINER_ID_LEN 64      /* lowercase hex */
#define SD_DOCKER_ID_MAX 255               /* event actor: container id, volume name */
#define SD_DOCKER_NAME_MAX 255             /* container / volume name */
#define SD_DOCKER_DRIVER_MAX 255           /* volume driver (plugin) name */
#define SD_DOCKER_PATH_MAX 4095            /* mount destination */
#define SD_DOCKER_TYPE_MAX 31              /* event Type */
#define SD_DOCKER_ACTION_MAX 31            /* event Action verb */
#define SD_DOCKER_ACTION_DETAIL_MAX 127    /* text after "verb: ", truncated */
#define SD_DOCKER_LABEL_SHOWN_MAX 63       /* reload-signal label, as shown in messages */
#define SD_DOCKER_TIMESTAMP_MAX 63         /* State.StartedAt (RFC 3339) */
#define SD_DOCKER_SINCE_MAX 32             /* "sec.nsec" plus NUL */

/* Longest event line sd_docker_events_run() accepts.  Container events carry
 * every label of the container, so this is generous. */
#define SD_DOCKER_EVENT_LINE_MAX SD_LINE_MAX_DEFAULT
/* Largest response body of a request (the container list of a big host). */
#define SD_DOCKER_RESPONSE_MAX ((size_t) 16 * 1024 * 1024)

/* ------------------------------------------------------------------------
 * Events
 * ---------------------------------------------------------------------- */

enum sd_docker_event_type {
        SD_DOCKER_EVENT_OTHER = 0,   /* network, image, daemon, plugin, ... */
        SD_DOCKER_EVENT_CONTAINER,
        SD_DOCKER_EVENT_VOLUME,
};

/* The verb of Action ("health_status: healthy" has verb health_status).
 * Anything else is SD_DOCKER_ACTION_OTHER; action_name has the text. */
enum sd_docker_action {
        SD_DOCKER_ACTION_OTHER = 0,
        SD_DOCKER_ACTION_CREATE,         /* container, volume */
        SD_DOCKER_ACTION_START,
        SD_DOCKER_ACTION_RESTART,
        SD_DOCKER_ACTION_KILL,           /* signal */
        SD_DOCKER_ACTION_DIE,            /* exit_code */
        SD_DOCKER_ACTION_STOP,
        SD_DOCKER_ACTION_DESTROY,        /* container, volume */
        SD_DOCKER_ACTION_RENAME,
        SD_DOCKER_ACTION_PAUSE,
        SD_DOCKER_ACTION_UNPAUSE,
        SD_DOCKER_ACTION_OOM,
        SD_DOCKER_ACTION_HEALTH_STATUS,  /* action_detail: healthy, unhealthy, starting */
        SD_DOCKER_ACTION_EXEC,           /* exec_create/exec_start/exec_die/exec_detach */
        SD_DOCKER_ACTION_MOUNT,          /* volume: driver, container_id, destination, rw */
        SD_DOCKER_ACTION_UNMOUNT,        /* volume: driver, container_id */
};

/*
 * One event line, flattened.  Fixed-size members: no allocation, nothing to
 * free, safe to copy.  Strings are NUL-terminated, empty when absent.
 */
struct sd_docker_event {
        enum sd_docker_event_type type;
        char type_name[SD_DOCKER_TYPE_MAX + 1];          /* Type as sent */
        enum sd_docker_action action;
        char action_name[SD_DOCKER_ACTION_MAX + 1];      /* verb: [a-z0-9_-]+ */
        char action_detail[SD_DOCKER_ACTION_DETAIL_MAX + 1];  /* after ": " */
        bool action_detail_truncated;                    /* exec command lines can be long */

        /* Actor.ID: a container id (checked: 64 hex) for container events, the
         * volume name for volume events; for other types as sent, truncated. */
        char actor_id[SD_DOCKER_ID_MAX + 1];

        int64_t time;          /* seconds since the epoch */
        int64_t time_nano;     /* nanoseconds since the epoch (time * 1e9 if not sent) */

        /* Container events (Actor.Attributes). */
        char name[SD_DOCKER_NAME_MAX + 1];   /* container name, no leading '/' */
        bool has_exit_code;
        int exit_code;                       /* die, exec_die */
        int signal;                          /* kill: signal number; 0 if absent */
        /* Label secretd.reload-signal: 0 absent, > 0 the signal number,
         * -EINVAL present but not a signal (the event still parses: a bad
         * label must not hide a die event). */
        int reload_signal;
        char reload_signal_label[SD_DOCKER_LABEL_SHOWN_MAX + 1];  /* escaped for messages */

        /* Volume events (Actor.Attributes). */
        char driver[SD_DOCKER_DRIVER_MAX + 1];
        char container_id[SD_DOCKER_CONTAINER_ID_LEN + 1];  /* mount, unmount: required */
        char destination[SD_DOCKER_PATH_MAX + 1];           /* mount */
        int rw;                                             /* mount: 1 rw, 0 ro; -1 absent */
};

/*
 * Parse one event line line[0..len) (no '\n' needed; surrounding whitespace is
 * fine).  0 on success, *out filled.  -EBADMSG for anything else, naming the
 * field: not JSON, not an object, duplicate keys, a missing Type/Action/Actor/
 * Actor.ID/time, a wrong JSON type, an over-long string, a container id that
 * is not 64 hex digits, a non-numeric exitCode or signal, a volume mount or
 * unmount without a container, a control character in a name.
 *
 * A line that fails to parse is an event the caller did not see: reconcile
 * from the container list rather than ignore it.
 */
int sd_docker_event_parse(const char *line, size_t len, struct sd_docker_event *out, sd_error *err);

/* Write "sec.nsec" of ev->time_nano into since (the form GET /events?since=
 * takes).  since is inclusive: a replay from it repeats that event, so event
 * handling must be idempotent. */
void sd_docker_event_since(const struct sd_docker_event *ev, char since[SD_DOCKER_SINCE_MAX]);

/* ------------------------------------------------------------------------
 * Containers: GET /containers/json?all=1 and GET /containers/{id}/json
 * ---------------------------------------------------------------------- */

enum sd_docker_mount_type {
        SD_DOCKER_MOUNT_OTHER = 0,   /* npipe, cluster, ... */
        SD_DOCKER_MOUNT_VOLUME,
        SD_DOCKER_MOUNT_BIND,
        SD_DOCKER_MOUNT_TMPFS,
};

struct sd_docker_mount {
        enum sd_docker_mount_type type;
        char *name;          /* volume name; NULL for bind and tmpfs mounts */
        char *destination;   /* path inside the container */
        char *driver;        /* volume driver; NULL when there is none */
        bool rw;
};

enum sd_docker_state {
        SD_DOCKER_STATE_UNKNOWN = 0,  /* a state this client does not know */
        SD_DOCKER_STATE_CREATED,
        SD_DOCKER_STATE_RUNNING,
        SD_DOCKER_STATE_PAUSED,
        SD_DOCKER_STATE_RESTARTING,
        SD_DOCKER_STATE_REMOVING,
        SD_DOCKER_STATE_EXITED,
        SD_DOCKER_STATE_DEAD,
};

/* Both endpoints fill this; pid and started_at only come from inspect. */
struct sd_docker_container {
        char id[SD_DOCKER_CONTAINER_ID_LEN + 1];
        char **names;            /* malloc()ed; without the leading '/' */
        size_t n_names;          /* list: all names (links too); inspect: 1 */
        enum sd_docker_state state;
        /* Processes exist: dockerd's State.Running, which stays true while
         * paused or restarting.  From the list: state running, paused or
         * restarting. */
        bool running;
        int pid;                 /* inspect: State.Pid (0 when not running); list: 0 */
        char started_at[SD_DOCKER_TIMESTAMP_MAX + 1];  /* inspect: State.StartedAt; list: "" */
        int reload_signal;       /* as in struct sd_docker_event */
        char reload_signal_label[SD_DOCKER_LABEL_SHOWN_MAX + 1];
        struct sd_docker_mount *mounts;   /* malloc()ed */
        size_t n_mounts;
};

/* Free what a container owns and zero it; a zeroed struct is fine. */
void sd_docker_container_clear(struct sd_docker_container *c);
#define _cleanup_docker_container_ _cleanup_(sd_docker_container_clear)

struct sd_docker_container_list {
        struct sd_docker_container *items;   /* malloc()ed */
        size_t n;
};

void sd_docker_container_list_clear(struct sd_docker_container_list *l);
#define _cleanup_docker_container_list_ _cleanup_(sd_docker_container_list_clear)

/* Parse the body of GET /containers/json: a JSON array of containers.
 * Per container: Id (64 hex), Names (array of strings), State (string),
 * Labels (object or null), Mounts (array of {Type, Name?, Destination,
 * Driver?, RW}).  Other members are ignored.  -EBADMSG naming the element
 * ("docker containers: [2].Mounts[0].RW: expected true or false"),
 * -ENOMEM.  *out is overwritten on success (clear it first if it held a
 * list). */
int sd_docker_containers_parse(const char *json, size_t len, struct sd_docker_container_list *out,
                               sd_error *err);

/* Parse the body of GET /containers/{id}/json: Id, Name, State.{Status,
 * Running, Pid, StartedAt}, Config.Labels, Mounts.  -EBADMSG naming the
 * field, -ENOMEM.  *out is overwritten on success. */
int sd_docker_container_inspect_parse(const char *json, size_t len, struct sd_docker_container *out,
                                      sd_error *err);

/* ------------------------------------------------------------------------
 * Signals and errors
 * ---------------------------------------------------------------------- */

/* Validate a signal as dockerd accepts it (POST /containers/{id}/kill?signal=,
 * the reload-signal label): a name, case-insensitive, with or without "SIG"
 * ("SIGHUP", "HUP", "hup"), RTMIN, RTMIN+n, RTMAX-n, RTMAX, or a number
 * 1..64.  *signo_out is Linux's number (RTMIN is 34, as in dockerd).
 * -EINVAL naming the (escaped) input otherwise. */
int sd_docker_signal_from_name(const char *name, int *signo_out, sd_error *err);

/* Turn a non-success HTTP answer into an error: returns the mapped negative
 * errno and fills err with "docker: METHOD PATH: STATUS MESSAGE", MESSAGE
 * being Docker's {"message": "..."} (escaped, bounded) or the status text
 * when the body has none.  path is what the message shows (no version
 * prefix, no query).  Mapping: 400 -EINVAL, 401/403 -EACCES, 404 -ENOENT,
 * 409 -EBUSY, anything else -EPROTO. */
int sd_docker_error_from_response(const char *method, const char *path, long status,
                                  const char *body, size_t len, sd_error *err);

/* ------------------------------------------------------------------------
 * Client
 *
 * Transport errors, the same for every call below (secretd/http.h; messages
 * "docker at <socket> is unreachable: GET /_ping: <reason> (is dockerd
 * running?)"):
 *   -ECONNREFUSED  dockerd is down: the socket is missing or nobody listens
 *                  (retry with backoff)
 *   -EACCES        the socket exists but this process may not connect
 *   -ETIMEDOUT     no connection or no answer within the timeouts
 *   -ECONNRESET    the connection broke (for events: the stream ended)
 *   -EPROTO        an HTTP status or body the call did not expect
 *   -EFBIG         a response over SD_DOCKER_RESPONSE_MAX
 * ---------------------------------------------------------------------- */

struct sd_docker;  /* opaque */

/* A client for the daemon at host: NULL (SD_DOCKER_DEFAULT_SOCKET), an
 * absolute socket path, or "unix:///path" (DOCKER_HOST's form).  -EINVAL for
 * another scheme or a relative path, -ENAMETOOLONG for a path over
 * SD_DOCKER_SOCKET_PATH_MAX bytes.  Nothing is connected yet; *out is freed
 * with sd_docker_free(). */
int sd_docker_new(const char *host, struct sd_docker **out, sd_error *err);
void sd_docker_free(struct sd_docker *d);
static inline void sd_docker_freep(struct sd_docker **d) {
        sd_docker_free(*d);
        *d = NULL;
}
#define _cleanup_docker_ _cleanup_(sd_docker_freep)

/* Milliseconds; 0 keeps the current value.  Defaults: connect 5000 (a unix
 * socket connects at once or never), request 30000 (whole request of the
 * non-streaming calls; for events, the wait for response headers).  Call
 * before sharing the client between threads. */
void sd_docker_set_timeouts(struct sd_docker *d, long connect_ms, long request_ms);

/* The socket path in use. */
const char *sd_docker_socket_path(const struct sd_docker *d);

/* GET /v1.41/_ping: 0 if dockerd answers and serves API 1.41 (an older
 * daemon answers 400 "client version 1.41 is too new": -EPROTO). */
int sd_docker_ping(struct sd_docker *d, sd_error *err);

/* GET /v1.41/info: *remapped_out is true when dockerd runs with
 * --userns-remap (SecurityOptions holds "name=userns"). */
int sd_docker_userns_remapped(struct sd_docker *d, bool *remapped_out, sd_error *err);

/* GET /containers/json?all=1[&filters=F]: every container, stopped ones too.
 * filters_json: NULL or a JSON object such as {"volume":["db"]} (-EINVAL if
 * it is not one).  *out is overwritten on success. */
int sd_docker_list_containers(struct sd_docker *d, const char *filters_json,
                              struct sd_docker_container_list *out, sd_error *err);

/* GET /containers/{id}/json.  id: a container id (or unique prefix) or
 * name, [A-Za-z0-9][A-Za-z0-9_.-]*, at most 255 bytes (-EINVAL otherwise).
 * -ENOENT "docker: GET /containers/x/json: 404 No such container: x".
 * *out is overwritten on success. */
int sd_docker_inspect_container(struct sd_docker *d, const char *id,
                                struct sd_docker_container *out, sd_error *err);

/* POST /containers/{id}/kill?signal=N (204).  signal_name as in
 * sd_docker_signal_from_name() (-EINVAL before any request).  -ENOENT when
 * there is no such container (404), -ESRCH when it is not running (409). */
int sd_docker_kill(struct sd_docker *d, const char *id, const char *signal_name, sd_error *err);

/* ------------------------------------------------------------------------
 * Events stream
 *
 * sd_docker_events_run() blocks: it opens GET /events, hands every event to
 * the handler in order, and returns only when the stream ends, fails, a
 * handler asks, or stop_fd becomes readable.  It is meant for a dedicated
 * thread (the agent's events thread); the shutdown path makes stop_fd
 * readable (an eventfd or pipe written once and never drained by us: it is
 * only polled, next to the socket, by curl_multi_poll()).  The handlers run
 * on that thread, outside any libcurl callback, so they may call the other
 * client functions (kill, inspect, list) freely.
 *
 * Why not hand out curl's fds for the caller's own poll loop: libcurl drives a
 * transfer through socket and timer callbacks that would leak into every
 * caller, and the agent already runs threads (libmicrohttpd), so a thread per
 * stream is the simpler contract.  The extra fd keeps stopping prompt and
 * race-free without signals.
 * ---------------------------------------------------------------------- */

struct sd_docker_events_handler {
        /* The stream is established (HTTP 200, headers in) and nothing has been
         * delivered yet: the moment to reconcile with sd_docker_list_containers(),
         * since from now on every change arrives as an event.  May be NULL. */
        int (*connected)(void *userdata, sd_error *err);
        /* One event.  Required. */
        int (*event)(void *userdata, const struct sd_docker_event *ev, sd_error *err);
        /* A line that is not a valid event: unparseable, over-long, or the
         * truncated tail of a stream that broke mid-line.  That event is lost
         * to the caller, who should reconcile.  May be NULL (skipped). */
        int (*bad_line)(void *userdata, const sd_error *why, sd_error *err);
        void *userdata;
};

/*
 * Stream events.  since: NULL (only new events) or "sec[.nsec]" (replay from
 * there; dockerd keeps only its last 256 events and forgets them on restart,
 * so also reconcile).  filters_json: NULL means {"type":["container","volume"]};
 * else a JSON object.  stop_fd: -1 or an fd to watch for POLLIN.
 *
 * Returns
 *   0              stop_fd became readable
 *   -ECONNREFUSED  dockerd is down (socket missing / not listening): retry with
 *                  backoff
 *   -ECONNRESET    the stream was established and then ended or broke
 *                  (dockerd stopped or restarted): reconnect with since= the
 *                  last event's sd_docker_event_since()
 *   -ETIMEDOUT     no connection or no response headers in time
 *   -EACCES, -EPROTO (non-200 status, with Docker's message), -EINVAL (bad
 *   since or filters), -ENOMEM
 *   any negative value a handler returned (err as the handler left it)
 *
 * Handlers return 0 to go on or a negative errno to stop the stream.
 */
int sd_docker_events_run(struct sd_docker *d, const char *since, const char *filters_json,
                         const struct sd_docker_events_handler *h, int stop_fd, sd_error *err);
