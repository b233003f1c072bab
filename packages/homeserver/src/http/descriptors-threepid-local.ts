/**
 * Descriptors the shared protocol package does not have in the form these routes need.
 */
import { endpoint, openidUserinfo, type UserinfoResponse } from "@beckon/protocol";

/**
 * `GET /_matrix/federation/v1/openid/userinfo` without the query validator, so that a missing
 * token is answered as the spec says (401 `M_UNKNOWN_TOKEN`) instead of 400 `M_MISSING_PARAM`.
 */
export const openidUserinfoLenient = endpoint<undefined, UserinfoResponse>({
  id: openidUserinfo.id,
  api: openidUserinfo.api,
  method: openidUserinfo.method,
  path: openidUserinfo.path,
  auth: openidUserinfo.auth,
  rateLimited: openidUserinfo.rateLimited,
  ...(openidUserinfo.response ? { response: openidUserinfo.response } : {}),
});
