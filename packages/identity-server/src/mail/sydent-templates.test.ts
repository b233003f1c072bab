/**
 * An operator's Sydent-style template directory. The fixtures below are our own small
 * templates written in Sydent's format (whole messages, Jinja2 syntax, Sydent's variable
 * names); they are not Sydent's files.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderMail } from "./render.js";
import { MailTemplateError } from "./context.js";
import { parseRenderedMessage, decodeEncodedWords } from "./parse-message.js";
import { pythonQuote } from "./sydent-templates.js";

const IS = "https://id.example.org";
let dir = "";

const INVITE_J2 = `Date: {{ date|safe }}
From: {{ from|safe }}
To: {{ to|safe }}
Bcc: collector@example.net
Message-ID: {{ messageid|safe }}
Subject: {{ subject_header_value|safe }}
X-Beckon-Fixture: invite {{ room_type|safe }}
MIME-Version: 1.0
Content-Type: multipart/alternative;
\tboundary="{{ multipart_boundary|safe }}"

--{{ multipart_boundary|safe }}
Content-Type: text/plain; charset=UTF-8
Content-Disposition: inline

Hello from the fixture brand.

{{ sender_display_name|safe }} {{ bracketed_verified_sender|safe }}invites you to a {% if room_type == "m.space" %}space{% else %}room{% endif %} {{ bracketed_room_name|safe }}here.

{{ web_client_location }}/#/room/{{ room_id|urlencode }}?email={{ to|urlencode }}&signurl={{ sign_url|urlencode }}&room_name={{ room_name|urlencode }}&room_avatar_url={{ room_avatar_url|urlencode }}&inviter_name={{ sender_display_name|urlencode }}&guest_access_token={{ guest_access_token|urlencode }}&room_type={{ room_type|urlencode }}

Key for your client: {{ ephemeral_private_key|safe }} / token {{ token|safe }}
Alias: {{ room_alias|safe }}, rules: {{ room_join_rules|safe }}, avatar: {{ sender_avatar_url|safe }}
Jinja-isms: {{ sender[:6]|safe }} {{ room_type == None }} {{ "yes" if True else "no" }} {{ token|lower }} {{ sender.upper()|safe }} {{ web_client_location.startswith("https") }} {{ sender[-3:]|safe }}

--{{ multipart_boundary|safe }}
Content-Type: text/html; charset=UTF-8
Content-Disposition: inline

<p>{{ sender_display_name }} <span>{{ bracketed_verified_sender }}</span> invites you to {{ bracketed_room_name }}</p>
<p><a href="{{ web_client_location }}/#/room/{{ room_id|urlencode }}?email={{ to|urlencode }}">Join</a></p>

--{{ multipart_boundary|safe }}--
`;

const VERIFY_J2 = `From: {{ from|safe }}
To: {{ to|safe }}
Subject: Confirm your address for the Fixture brand
Content-Type: text/plain; charset=UTF-8

Follow {{ link|safe }} (asked from {{ ipaddress|safe }}), or type {{ token|safe }}.
`;

const LEGACY_EML = `From: %(from)s
To: %(to)s
Subject: =?utf-8?q?Legacy_invite_from_?= %(sender_display_name)s
Content-Type: multipart/alternative; boundary="%(multipart_boundary)s"

--%(multipart_boundary)s
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

100%% legacy: %(room_name)s caf=C3=A9

--%(multipart_boundary)s
Content-Type: text/html; charset=UTF-8

<p>%(room_name_forhtml)s</p><a href="https://x.example/?r=%(room_id_forurl)s">go</a>
--%(multipart_boundary)s--
`;

// Like Sydent's stock templates: the sign URL's host is written into the template.
const STOCK_J2 = `Subject: {{ subject_header_value|safe }}
Content-Type: multipart/alternative; boundary="{{ multipart_boundary|safe }}"

--{{ multipart_boundary|safe }}
Content-Type: text/plain; charset=UTF-8

{{ web_client_location }}/#/room/{{ room_id|urlencode }}?email={{ to|urlencode }}&signurl=https%3A%2F%2Fmatrix.org%2F_matrix%2Fidentity%2Fapi%2Fv1%2Fsign-ed25519%3Ftoken%3D{{ token|urlencode }}%26private_key%3D{{ ephemeral_private_key|urlencode }}&room_name={{ room_name|urlencode }}
Or: https://vector.im/_matrix/identity/api/v1/sign-ed25519?token={{ token|safe }}&private_key={{ ephemeral_private_key|safe }}
Unrelated: https://matrix.org/_matrix/identity/api/v1/sign-ed25519?token=OTHER&private_key={{ ephemeral_private_key|safe }}

--{{ multipart_boundary|safe }}
Content-Type: text/html; charset=UTF-8

<a href="https://vector.im/_matrix/identity/api/v1/sign-ed25519?token={{ token }}&amp;private_key={{ ephemeral_private_key }}">sign</a>
--{{ multipart_boundary|safe }}--
`;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "beckon-mail-tpl-"));
  mkdirSync(join(dir, "stock"));
  writeFileSync(join(dir, "stock", "invite_template.eml.j2"), STOCK_J2);
  mkdirSync(join(dir, "fixture"));
  mkdirSync(join(dir, "legacy"));
  mkdirSync(join(dir, "matrix-org"));
  writeFileSync(join(dir, "fixture", "invite_template.eml.j2"), INVITE_J2);
  writeFileSync(join(dir, "fixture", "verification_template.eml.j2"), VERIFY_J2);
  writeFileSync(join(dir, "legacy", "invite_template.eml"), LEGACY_EML);
  writeFileSync(join(dir, "matrix-org", "verification_template.eml.j2"), VERIFY_J2.replace("Fixture brand", "default brand"));
  mkdirSync(join(dir, "broken"));
  writeFileSync(join(dir, "broken", "invite_template.eml.j2"), "Subject: {% if %}\n\nx\n");
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function inviteVars(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    to: "bob@example.org",
    public_base_url: IS,
    room_id: "!room:example.org",
    sender: "@alice:example.org",
    sender_display_name: "Alice & Co",
    room_name: "<Team> chat",
    room_alias: "#team:example.org",
    room_avatar_url: "mxc://example.org/av atar",
    room_join_rules: "invite",
    sender_avatar_url: "mxc://example.org/alice",
    token: "TOKEN",
    ephemeral_private_key: "KEY_-x",
    ...extra,
  };
}

test("Sydent-style .eml.j2: Sydent's variables, autoescape in HTML, |safe text, Jinja urlencode", () => {
  const m = renderMail("invite", inviteVars(), { templateDir: dir, brand: "fixture", from: "Beckon <noreply@example.org>" });
  assert.equal(m.subject, "Alice & Co has invited you to chat");
  assert.ok(m.text.startsWith("Hello from the fixture brand."));
  assert.ok(m.text.includes("Alice & Co (@alice:example.org) invites you to a room (<Team> chat) here."), m.text);
  assert.ok(m.text.includes("Key for your client: KEY_-x / token TOKEN"));
  assert.ok(m.text.includes("Alias: #team:example.org, rules: invite, avatar: mxc://example.org/alice"));
  assert.ok(m.text.includes("Jinja-isms: @alice false yes token @ALICE:EXAMPLE.ORG true org"), m.text);
  // Jinja's urlencode keeps "/" and encodes "!", ":" and spaces.
  assert.ok(m.text.includes("https://app.element.io/#/room/%21room%3Aexample.org?email=bob%40example.org&signurl="), m.text);
  assert.ok(m.text.includes("&room_avatar_url=mxc%3A//example.org/av%20atar&"));
  assert.ok(m.text.includes(`signurl=${pythonQuote(`${IS}/_matrix/identity/v2/sign-ed25519?token=TOKEN&private_key=KEY_-x`)}&`));
  assert.ok(m.html);
  assert.ok(m.html.includes("<p>Alice &amp; Co <span>(@alice:example.org) </span> invites you to (&lt;Team&gt; chat) </p>"), m.html);
  assert.ok(m.html.includes('href="https://app.element.io/#/room/%21room%3Aexample.org?email=bob%40example.org"'));
  // Only harmless extra headers survive; the template's Bcc/To/From are ignored.
  assert.deepEqual(m.headers, { "Auto-Submitted": "auto-generated", "X-Beckon-Fixture": "invite" });
});

test("Sydent-style templates: room type, truncation and injection attempts", () => {
  const m = renderMail(
    "invite",
    inviteVars({ room_type: "m.space", sender_display_name: "Mallory\r\nBcc: victim@example.org\r\n\r\nhi", room_name: "R".repeat(31) }),
    { templateDir: dir, brand: "fixture" },
  );
  assert.ok(!/[\r\n]/.test(m.subject));
  assert.ok(m.subject.endsWith("has invited you to a space"));
  assert.equal(m.headers["X-Beckon-Fixture"], "invite m.space");
  assert.equal(m.headers.Bcc, undefined);
  assert.ok(m.text.includes(`(${"R".repeat(25)}…)`));
  assert.ok(!m.text.includes("\nBcc:"));
  assert.ok(m.text.includes("a space"));
});

test("brands: request brand, then the default brand, then the built-in template", () => {
  const v = { to: "bob@example.org", public_base_url: IS, token: "T0K", client_secret: "cs", sid: "7", ipaddress: "192.0.2.1" };
  const fixture = renderMail("validation", v, { templateDir: dir, brand: "fixture" });
  assert.equal(fixture.subject, "Confirm your address for the Fixture brand");
  assert.equal(fixture.text, `Follow ${IS}/_matrix/identity/v2/validate/email/submitToken?token=T0K&client_secret=cs&sid=7 (asked from 192.0.2.1), or type T0K.\n`);
  assert.equal(fixture.html, undefined);
  for (const brand of [undefined, "nope", "../fixture", ".."]) {
    const m = renderMail("validation", v, { templateDir: dir, ...(brand !== undefined ? { brand } : {}) });
    assert.equal(m.subject, "Confirm your address for the default brand", String(brand));
  }
  // No invite template for the default brand (and none at the top level): built-in.
  const builtin = renderMail("invite", inviteVars(), { templateDir: dir });
  assert.equal(builtin.subject, "Alice & Co has invited you to chat");
  assert.ok(builtin.text.includes("Alice & Co (@alice:example.org) has invited you"));
});

test("legacy Sydent .eml templates (%(name)s, _forhtml, _forurl, %%)", () => {
  const m = renderMail("invite", inviteVars(), { templateDir: dir, brand: "legacy" });
  assert.equal(m.subject, "Legacy invite from Alice & Co");
  assert.equal(m.text, "100% legacy: <Team> chat café\n");
  assert.equal(m.html, '<p>&lt;Team&gt; chat</p><a href="https://x.example/?r=%21room%3Aexample.org">go</a>');
});

test("sign URLs hard-coded to another identity server are pointed at ours", () => {
  const m = renderMail("invite", inviteVars({ ephemeral_private_key: "K/y+z_-" }), { templateDir: dir, brand: "stock" });
  const ours = `${IS}/_matrix/identity/v2/sign-ed25519?token=TOKEN&private_key=K%2Fy%2Bz_-`;
  const lines = m.text.split("\n");
  assert.ok(lines[0]?.includes(`&signurl=${encodeURIComponent(ours)}&room_name=`), lines[0]);
  assert.equal(lines[1], `Or: ${ours}`);
  assert.ok(lines[2]?.includes("https://matrix.org/_matrix/identity/api/v1/sign-ed25519?token=OTHER"), "other invites' URLs are left alone");
  assert.equal(m.html, `<a href="${ours.replace(/&/g, "&amp;")}">sign</a>`);
});

test("a broken operator template is a MailTemplateError", () => {
  assert.throws(() => renderMail("invite", inviteVars(), { templateDir: dir, brand: "broken" }), MailTemplateError);
});

test("message parser: folding, CRLF, base64 parts, encoded words", () => {
  const raw = [
    "Subject: =?UTF-8?B?SGVsbG8g?=",
    " =?UTF-8?Q?w=C3=B6rld?=",
    "Content-Type: multipart/mixed; boundary=outer",
    "",
    "preamble",
    "--outer",
    'Content-Type: multipart/alternative; boundary="inner"',
    "",
    "--inner",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: base64",
    "",
    Buffer.from("plain ü\n").toString("base64"),
    "--inner",
    "Content-Type: text/html",
    "",
    "<b>x</b>",
    "--inner--",
    "--outer--",
    "",
  ].join("\r\n");
  const p = parseRenderedMessage(raw);
  assert.equal(decodeEncodedWords(p.headers[0]?.[1] ?? ""), "Hello wörld");
  assert.equal(p.text, "plain ü\n");
  assert.equal(p.html, "<b>x</b>");
  assert.throws(() => parseRenderedMessage("no header here\n\nbody"), MailTemplateError);
});
