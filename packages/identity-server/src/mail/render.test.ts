import { test } from "node:test";
import assert from "node:assert/strict";
import { renderMail } from "./render.js";
import { MailTemplateError } from "./context.js";
import { headerSafe, isValidMailAddress, parseSenderAddress } from "./text.js";

const IS = "http://127.0.0.1:8090";

function inviteVars(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    to: "bob@example.org",
    public_base_url: IS,
    room_id: "!room:example.org",
    sender: "@alice:example.org",
    sender_display_name: "Alice",
    room_name: "Team chat",
    room_alias: "#team:example.org",
    room_avatar_url: "mxc://example.org/avatar",
    room_join_rules: "invite",
    sender_avatar_url: "",
    token: "abcDEFtoken",
    ephemeral_private_key: "a_b-c+d/e",
    ...extra,
  };
}

/** The query part of the join link's fragment (`#/room/<id>?…`). */
function joinParams(link: string): { room: string; params: URLSearchParams; base: string } {
  const [base, fragment] = link.split("#");
  assert.ok(fragment, `no fragment in ${link}`);
  const [path = "", query] = fragment.split("?");
  assert.ok(path.startsWith("/room/"));
  return { base: base ?? "", room: decodeURIComponent(path.slice("/room/".length)), params: new URLSearchParams(query) };
}

function firstLineWith(text: string, needle: string): string {
  const line = text.split("\n").find((l) => l.includes(needle));
  assert.ok(line, `no line with ${needle}`);
  return line;
}

test("validation mail: submitToken link on our IS (v2 path), token shown, values encoded", () => {
  const m = renderMail("validation", {
    to: "bob@example.org",
    public_base_url: `${IS}/`,
    token: "TOK123",
    client_secret: "sec.ret=_-",
    sid: 42,
  });
  const link = `${IS}/_matrix/identity/v2/validate/email/submitToken?token=TOK123&client_secret=sec.ret%3D_-&sid=42`;
  assert.equal(m.subject, "Confirm your email address for Matrix");
  assert.ok(m.text.includes(link), m.text);
  assert.ok(m.text.includes("the code is TOK123"));
  assert.ok(m.html?.includes(`href="${link.replace(/&/g, "&amp;")}"`));
  assert.equal(m.headers["Auto-Submitted"], "auto-generated");
});

test("invite mail: sign URL, join link, room name, inviter display name and MXID", () => {
  const m = renderMail("invite", inviteVars());
  const sign = `${IS}/_matrix/identity/v2/sign-ed25519?token=abcDEFtoken&private_key=a_b-c%2Bd%2Fe`;
  assert.equal(m.subject, "Alice has invited you to chat");
  assert.ok(m.text.includes(sign), "plain sign URL in the text");
  assert.ok(m.text.includes("Alice (@alice:example.org)"));
  assert.ok(m.text.includes("Team chat"));
  assert.ok(m.text.includes("#team:example.org"));
  const link = firstLineWith(m.text, "https://app.element.io/#/room/");
  const { room, params, base } = joinParams(link);
  assert.equal(base, "https://app.element.io/");
  assert.equal(room, "!room:example.org");
  assert.equal(params.get("email"), "bob@example.org");
  assert.equal(params.get("signurl"), sign);
  assert.equal(params.get("room_name"), "Team chat");
  assert.equal(params.get("inviter_name"), "Alice");
  assert.equal(params.get("room_avatar_url"), "mxc://example.org/avatar");
  // Every value is encoded: the raw link has no second "?" and no raw "@" or ":" after the fragment start.
  assert.ok(!link.split("#")[1]?.slice(1).includes("@"));
  assert.ok(link.includes("signurl=http%3A%2F%2F127.0.0.1%3A8090%2F_matrix%2Fidentity%2Fv2%2Fsign-ed25519%3Ftoken%3DabcDEFtoken%26private_key%3D"));
  // The HTML part links to the same place (attribute-escaped).
  assert.ok(m.html?.includes(`href="${link.replace(/&/g, "&amp;")}"`));
  assert.ok(m.html?.includes("@alice:example.org"));
});

test("invite mail: web client from the request, then config; non-http locations ignored", () => {
  const a = renderMail("invite", inviteVars({ "org.matrix.web_client_location": "https://chat.example.org/" }), { webClientLocation: "https://cfg.example" });
  assert.ok(a.text.includes("https://chat.example.org/#/room/!room%3Aexample.org?email="));
  const b = renderMail("invite", inviteVars(), { webClientLocation: "https://cfg.example" });
  assert.ok(b.text.includes("https://cfg.example/#/room/"));
  const c = renderMail("invite", inviteVars({ "org.matrix.web_client_location": "javascript:alert(1)" }));
  assert.ok(c.text.includes("https://app.element.io/#/room/"));
  assert.ok(!c.text.includes("javascript:"));
});

test("invite mail: HTML-escaped in the HTML part, verbatim in the text part", () => {
  const evilRoom = "<script>x</script>";
  const evilName = `"><img src=x>`;
  const m = renderMail("invite", inviteVars({ room_name: evilRoom, sender_display_name: evilName, room_alias: "#a&b:example.org" }));
  assert.ok(m.html);
  assert.ok(!m.html.includes("<script>"));
  assert.ok(!m.html.includes("<img"));
  assert.ok(m.html.includes("&lt;script&gt;x&lt;/script&gt;"));
  assert.ok(m.html.includes("&quot;&gt;&lt;img src=x&gt;"));
  assert.ok(m.html.includes("#a&amp;b:example.org"));
  assert.ok(m.text.includes(evilRoom));
  assert.ok(m.text.includes(evilName));
});

test("invite mail: long names truncated like Sydent (code points), MXID never truncated", () => {
  const longName = "A".repeat(25);
  const longRoom = "R".repeat(40);
  const m = renderMail("invite", inviteVars({ sender_display_name: longName, room_name: longRoom, sender: "@a-very-long-user-name-indeed:example.org" }));
  assert.equal(m.subject, `${"A".repeat(19)}… has invited you to chat`);
  assert.ok(m.text.includes(`${"R".repeat(25)}…`));
  assert.ok(!m.text.includes("R".repeat(26)));
  assert.ok(m.text.includes("(@a-very-long-user-name-indeed:example.org)"));
  const link = firstLineWith(m.text, "/#/room/");
  assert.equal(joinParams(link).params.get("room_name"), `${"R".repeat(25)}…`);
  // At the limits nothing is cut; emoji count as one character each.
  const exact = renderMail("invite", inviteVars({ sender_display_name: "B".repeat(20), room_name: "😀".repeat(30) }));
  assert.equal(exact.subject, `${"B".repeat(20)} has invited you to chat`);
  assert.ok(exact.text.includes("😀".repeat(30)));
  const emoji = renderMail("invite", inviteVars({ sender_display_name: "😀".repeat(21) }));
  assert.equal(emoji.subject, `${"😀".repeat(19)}… has invited you to chat`);
});

test("invite mail: no display name → the MXID; spaces say space", () => {
  const m = renderMail("invite", inviteVars({ sender_display_name: "", room_type: "m.space", room_name: "" }));
  assert.equal(m.subject, "@alice:example.org has invited you to a space");
  assert.ok(m.text.includes("@alice:example.org has invited you to the space #team:example.org"));
  assert.ok(!m.text.includes("(@alice:example.org)"));
});

test("header injection: CR/LF in names and subjects is neutralised, in addresses refused", () => {
  const m = renderMail("invite", inviteVars({ sender_display_name: "Eve\r\nBcc: victim@example.org", room_name: "x\nSubject: hi\r\n\r\n<i>" }));
  assert.ok(!/[\r\n]/.test(m.subject), JSON.stringify(m.subject));
  for (const v of Object.values(m.headers)) assert.ok(!/[\r\n]/.test(v));
  assert.ok(!m.text.includes("\nBcc:"));
  assert.ok(!m.text.includes("\nSubject:"));
  assert.ok(!m.html?.includes("<i>"));
  assert.ok(m.html?.includes("&lt;i&gt;"));
  for (const to of ["bob@example.org\r\nBcc: x@example.org", "a@example.org, b@example.org", "Bob <bob@example.org>", "bob@example.org\n", "bob", "@example.org", "bob@exa mple.org", "bob@example..org", "bob@x@example.org", "bob\u202e@example.org", "bob\u0000@example.org"]) {
    assert.throws(() => renderMail("invite", inviteVars({ to })), MailTemplateError, to);
    assert.throws(() => renderMail("validation", { to, public_base_url: IS, token: "t", client_secret: "c", sid: "1" }), MailTemplateError);
  }
  assert.equal(headerSafe("a\r\nb\u2028c\u202ed"), "a b cd");
});

test("address and sender helpers", () => {
  assert.ok(isValidMailAddress("bob+tag@mail.example.org"));
  assert.ok(isValidMailAddress("jörg@bücher.example"));
  assert.ok(isValidMailAddress("bob@localhost"));
  assert.ok(!isValidMailAddress("bob@-example.org"));
  assert.ok(!isValidMailAddress(`${"a".repeat(65)}@example.org`));
  assert.deepEqual(parseSenderAddress("Beckon <noreply@example.org>"), { name: "Beckon", address: "noreply@example.org" });
  assert.deepEqual(parseSenderAddress("noreply@example.org"), { address: "noreply@example.org" });
  assert.equal(parseSenderAddress("Beckon <noreply@example.org>, x@example.org"), undefined);
});

test("missing variables are errors, not half-rendered mails", () => {
  assert.throws(() => renderMail("invite", inviteVars({ token: undefined })), /token/);
  assert.throws(() => renderMail("invite", inviteVars({ ephemeral_private_key: "" })), /ephemeral_private_key/);
  assert.throws(() => renderMail("invite", inviteVars({ public_base_url: "ftp://x" })), /public_base_url/);
  assert.throws(() => renderMail("invite", inviteVars({ room_id: "" })), /room_id/);
  assert.throws(() => renderMail("validation", { to: "bob@example.org", public_base_url: IS, token: "t", sid: "1" }), /client_secret/);
});

test("caller-built links and the is_base_url alias are accepted", () => {
  const v = renderMail("validation", { to: "bob@example.org", is_base_url: IS, token: "t", client_secret: "c", sid: "1" });
  assert.ok(v.text.includes(`${IS}/_matrix/identity/v2/validate/email/submitToken?token=t&client_secret=c&sid=1`));
  const given = "https://id.example.org/_matrix/identity/v2/validate/email/submitToken?token=t&client_secret=c&sid=1";
  const g = renderMail("validation", { to: "bob@example.org", link: given, token: "t", client_secret: "c", sid: "1" });
  assert.ok(g.text.includes(given));
  const bad = renderMail("validation", { to: "bob@example.org", public_base_url: IS, link: "javascript:alert(1)", token: "t", client_secret: "c", sid: "1" });
  assert.ok(!bad.text.includes("javascript:"));
  const i = renderMail("invite", inviteVars({ public_base_url: undefined, sign_url: "https://id.example.org/sign?x=1", join_link: "https://web.example/#/room/x?y=1" }));
  assert.ok(i.text.includes("https://id.example.org/sign?x=1"));
  assert.ok(i.text.includes("https://web.example/#/room/x?y=1"));
  assert.throws(() => renderMail("invite", inviteVars({ public_base_url: undefined })), /public_base_url/);
});

test("msisdn template is a short text", () => {
  const m = renderMail("validation-msisdn", { to: "bob@example.org", token: "123456" });
  assert.equal(m.text, "Your code is 123456\n");
  assert.equal(m.html, undefined);
});
