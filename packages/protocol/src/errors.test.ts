import { test } from "node:test";
import assert from "node:assert/strict";
import { ERRCODES, isMatrixError, isSpecErrcode, MatrixError } from "./errors.js";

test("MatrixError renders {errcode, error, ...extra} with the usual status", () => {
  const e = new MatrixError("M_LIMIT_EXCEEDED", "Too many requests", undefined, { retry_after_ms: 2000 });
  assert.equal(e.status, 429);
  assert.deepEqual(e.toJSON(), { errcode: "M_LIMIT_EXCEEDED", error: "Too many requests", retry_after_ms: 2000 });
  assert.equal(JSON.stringify(e), '{"retry_after_ms":2000,"errcode":"M_LIMIT_EXCEEDED","error":"Too many requests"}');
  assert.equal(new MatrixError("M_THREEPID_IN_USE", "bound", 400, { mxid: "@a:b" }).toJSON().mxid, "@a:b");
  assert.deepEqual(new MatrixError("M_INVALID_PEPPER", "x", undefined, { algorithm: "sha256", lookup_pepper: "p" }).toJSON(), {
    errcode: "M_INVALID_PEPPER",
    error: "x",
    algorithm: "sha256",
    lookup_pepper: "p",
  });
  assert.equal(new MatrixError("M_UNKNOWN_TOKEN", "x", 401, { soft_logout: true }).toJSON().soft_logout, true);
  // Extras never override errcode or error.
  assert.deepEqual(new MatrixError("M_FORBIDDEN", "no", 403, { errcode: "M_X", error: "y" }).toJSON(), { errcode: "M_FORBIDDEN", error: "no" });
  // Explicit status wins; unknown codes default to 400.
  assert.equal(new MatrixError("M_UNRECOGNIZED", "wrong method", 405).status, 405);
  assert.equal(new MatrixError("ORG.EXAMPLE.CUSTOM", "x").status, 400);
  assert.equal(new MatrixError("M_UNKNOWN", "x").status, 500);
  assert.equal(new MatrixError("M_NOT_FOUND", "x").status, 404);
  assert.equal(new MatrixError("M_TERMS_NOT_SIGNED", "x").status, 403);
  assert.equal(new MatrixError("M_UNAUTHORIZED", "x").status, 401);
  assert.ok(e instanceof Error);
  assert.equal(e.message, "Too many requests");
  assert.equal(e.name, "MatrixError");
});

test("fromBody parses error bodies and nothing else", () => {
  const e = MatrixError.fromBody(403, { errcode: "M_FORBIDDEN", error: "nope", extra: 1 });
  assert.ok(e);
  assert.equal(e.status, 403);
  assert.equal(e.errcode, "M_FORBIDDEN");
  assert.deepEqual(e.extra, { extra: 1 });
  assert.equal(MatrixError.fromBody(400, { errcode: "M_X" })?.message, "");
  for (const bad of [null, "x", [], {}, { error: "x" }, { errcode: 1 }]) assert.equal(MatrixError.fromBody(400, bad), undefined);
});

test("isMatrixError also recognises copies from another package instance", () => {
  assert.ok(isMatrixError(new MatrixError("M_FORBIDDEN", "x")));
  const foreign = Object.assign(new Error("x"), { name: "MatrixError", errcode: "M_FORBIDDEN" });
  assert.ok(isMatrixError(foreign));
  assert.equal(isMatrixError(new Error("x")), false);
  assert.equal(isMatrixError({ errcode: "M_FORBIDDEN" }), false);
});

test("the errcode table is well-formed", () => {
  for (const [code, status] of Object.entries(ERRCODES)) {
    assert.match(code, /^M_[A-Z_]+$/);
    assert.ok(status >= 400 && status < 600, code);
    assert.ok(isSpecErrcode(code));
  }
  for (const needed of ["M_FORBIDDEN", "M_UNKNOWN_TOKEN", "M_MISSING_TOKEN", "M_BAD_JSON", "M_NOT_JSON", "M_NOT_FOUND", "M_LIMIT_EXCEEDED",
    "M_UNRECOGNIZED", "M_UNKNOWN", "M_UNAUTHORIZED", "M_SERVER_NOT_TRUSTED", "M_THREEPID_IN_USE", "M_MISSING_PARAM", "M_INVALID_PARAM",
    "M_INVALID_EMAIL", "M_TERMS_NOT_SIGNED", "M_INVALID_PEPPER", "M_SESSION_NOT_VALIDATED", "M_NO_VALID_SESSION", "M_SESSION_EXPIRED",
    "M_TOKEN_INCORRECT", "M_INVITE_BLOCKED", "M_UNSUPPORTED_ROOM_VERSION"]) {
    assert.ok(isSpecErrcode(needed), needed);
  }
  assert.equal(isSpecErrcode("toString"), false);
  assert.equal(isSpecErrcode("__proto__"), false);
});
