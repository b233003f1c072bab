/** Accounts: register (+ Synapse's shared-secret admin form), login, logout, whoami, deactivate. */
import {
  adminRegister,
  adminRegisterNonce,
  deactivate,
  login,
  loginFlows,
  logout,
  logoutAll,
  register,
  whoami,
} from "@beckon/protocol";
import type { FastifyReply } from "fastify";
import { HANDLED } from "@beckon/server-kit";
import { UiaChallenge } from "../../domain/accounts.js";
import { accessTokenOf } from "../auth.js";
import type { HttpContext } from "../context.js";

/** Runs `fn`; a UIA challenge becomes the spec's 401 `{flows, session, params}` body. */
export async function withUia<T>(reply: FastifyReply, fn: () => Promise<T>): Promise<T | typeof HANDLED> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof UiaChallenge) {
      await reply.code(401).type("application/json").send(JSON.stringify(e.body));
      return HANDLED;
    }
    throw e;
  }
}

export function registerAccountRoutes(ctx: HttpContext): void {
  const { router, accounts } = ctx;
  router.add(register, ({ body, query, reply, request }) =>
    withUia(reply, async () => {
      ctx.limit("registration", request.ip);
      return accounts.register({ ...body, kind: query.kind });
    }),
  );
  router.add(adminRegisterNonce, () => accounts.adminNonce());
  router.add(adminRegister, ({ body }) =>
    accounts.adminRegister({ ...body, user_type: typeof body.user_type === "string" ? body.user_type : undefined }),
  );
  router.add(loginFlows, () => ({ flows: [{ type: "m.login.password" }] }));
  router.add(login, async ({ body, request }) => {
    ctx.limit("login", request.ip);
    const s = await accounts.login(body);
    return { ...s, well_known: { "m.homeserver": { base_url: ctx.publicBaseUrl } } };
  });
  router.add(logout, async ({ request }) => {
    const token = accessTokenOf(request);
    if (token) await accounts.logout(token);
    return {};
  });
  router.add(logoutAll, async ({ auth }) => {
    await accounts.logoutAll(auth.userId);
    return {};
  });
  router.add(whoami, ({ auth }) => ({ user_id: auth.userId as never, device_id: auth.deviceId, is_guest: false }));
  router.add(deactivate, ({ auth, body, reply }) =>
    withUia(reply, async () => {
      await accounts.checkUia(auth.userId, body.auth as Record<string, unknown> | undefined);
      let result: "success" | "no-support" = "no-support";
      if (ctx.threepid?.unbindAllForUser) result = await ctx.threepid.unbindAllForUser(auth.userId);
      for (const roomId of await ctx.rooms.joinedRooms(auth.userId)) {
        await ctx.membership.leave(roomId, auth.userId).catch(() => undefined);
      }
      const invited = (await ctx.rooms.deps.rooms.getUserMemberships(auth.userId)).filter((m) => m.membership === "invite");
      for (const m of invited) await ctx.membership.leave(m.roomId, auth.userId).catch(() => undefined);
      await accounts.deactivate(auth.userId);
      return { id_server_unbind_result: result };
    }),
  );
}
