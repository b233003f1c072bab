/**
 * `beckon generate-config`: commented sample configurations for a production deployment of
 * both servers (key names per DECISIONS.md "Tooling facts"). Every setting can also be given
 * in the environment: `BECKON_HS_<KEY>` / `BECKON_IS_<KEY>`, `__` for nesting.
 */

export interface SampleOptions {
  /** The homeserver's public name, e.g. `example.org`. */
  homeserverName?: string;
  /** The identity server's public name, e.g. `id.example.org`. */
  identityServerName?: string;
}

export function sampleHomeserverConfig(o: SampleOptions = {}): string {
  const hs = o.homeserverName ?? "example.org";
  const is = o.identityServerName ?? "id.example.org";
  return `# Beckon homeserver configuration (sample written by \`beckon generate-config\`).
# Run: beckon homeserver --config homeserver.yaml
# Any setting can be overridden from the environment: BECKON_HS_SERVER_NAME=…,
# nested keys with "__": BECKON_HS_RATE_LIMITS__ENABLED=false.

# The part after ":" in every user and room ID. Cannot change once users exist.
server_name: ${hs}

# How clients reach this server (advertised in /.well-known/matrix/client).
public_base_url: https://matrix.${hs}

# Where to listen; put a TLS-terminating reverse proxy in front.
listen: 127.0.0.1:8008

# sqlite:<path> or postgres://user:password@host/db
database_url: postgres://beckon:secret@127.0.0.1/beckon
# PostgreSQL schema (lets several servers share one database).
database_schema: beckon_hs

registration:
  # Open registration with m.login.dummy. Turn off for a closed server.
  enabled: false
  # Synapse-style shared-secret admin registration; leave out to disable.
  # shared_secret: change-me

passwords:
  # scrypt cost (power of two); 16384 ≈ 16 MiB and a few tens of ms per hash.
  scrypt_n: 16384

identity_servers:
  # id_server name → base URL, trusted as configured (plain http allowed here).
  map:
    ${is}: https://${is}
  # Only talk to identity servers in the map. Others must resolve to public addresses (https).
  only_mapped: true
  # Advertised to clients in /.well-known/matrix/client.
  default: https://${is}

outbound:
  # Allow requests to private/loopback addresses (development only).
  allow_private: false
  timeout: 10s
  max_response_size: 1MiB

rate_limits:
  enabled: true
  # Each: sustained per_second and burst, per key.
  invites_per_room: { per_second: 0.5, burst: 20 }
  invites_per_user: { per_second: 0.5, burst: 20 }
  invites_per_issuer: { per_second: 0.5, burst: 20 }
  third_party_invites: { per_second: 0.2, burst: 10 }
  login: { per_second: 0.5, burst: 10 }
  registration: { per_second: 0.1, burst: 5 }

invites:
  # How long a third-party invite stays usable, and how long a repeat is answered from the first.
  lifetime: 30d
  dedupe_window: 10m

http:
  body_limit: 1MiB

# The web client that invite links open.
web_client_location: https://app.element.io

log_level: info
`;
}

export function sampleIdentityServerConfig(o: SampleOptions = {}): string {
  const hs = o.homeserverName ?? "example.org";
  const is = o.identityServerName ?? "id.example.org";
  return `# Beckon identity server configuration (sample written by \`beckon generate-config\`).
# Run: beckon identity-server --config identity-server.yaml
# Any setting can be overridden from the environment: BECKON_IS_SMTP_URL=…,
# nested keys with "__": BECKON_IS_RATE_LIMITS__ENABLED=false.

# The name this server signs with (ed25519:0) and answers to.
server_name: ${is}
# Other names it also answers to (destination_is of unbind requests).
other_names: []

# Base URL used in key_validity_url, mail links and sign URLs.
public_base_url: https://${is}

listen: 127.0.0.1:8090

# sqlite:<path> or postgres://user:password@host/db
database_url: postgres://beckon:secret@127.0.0.1/beckon
database_schema: beckon_is

# Homeserver name → base URL, trusted as configured. Others are found by Matrix discovery (https).
homeservers:
  ${hs}: https://matrix.${hs}
# Homeservers whose users may register (empty: any).
homeserver_allow_list: []

outbound:
  allow_private: false
  timeout: 10s
  max_response_size: 1MiB

# smtp:// (STARTTLS when offered) or smtps:// (implicit TLS); credentials in the URL.
smtp_url: smtp://mailer:secret@smtp.${hs}:587
email:
  from: "${hs} identity <noreply@${is}>"
  # Refuse to send without TLS.
  require_tls: true
  # A directory of Sydent-style *.eml.j2 templates (optional).
  # template_dir: /etc/beckon/templates
  # brand: Example
  # How much of the address the room sees: ali...@exa...
  redact_username_chars: 3
  redact_domain_chars: 3

# The web client that invite mails link to.
web_client_location: https://app.element.io

rate_limits:
  enabled: true
  request_token_ip: { per_second: 1, burst: 20 }
  request_token_address: { per_second: 0.1, burst: 5 }
  store_invite_sender: { per_second: 10, burst: 100 }
  register_ip: { per_second: 5, burst: 50 }

invites:
  lifetime: 30d
  dedupe_window: 10m
  purge_interval: 1h

validation:
  session_lifetime: 24h

# Delivery of invites to homeservers after a bind (onbind), with capped back-off.
delivery:
  base_backoff: 1s
  max_backoff: 1h
  lease: 60s
  batch_size: 100

# Terms users must accept before using this server (optional).
# terms:
#   privacy_policy:
#     version: "1.0"
#     en: { name: Privacy Policy, url: "https://${is}/privacy-1.0.html" }

# A fixed lookup pepper (default: generated and kept in the database).
# pepper: change-me
lookup_limit: 10000
body_limit: 1MiB
log_level: info

metrics:
  enabled: true
`;
}
