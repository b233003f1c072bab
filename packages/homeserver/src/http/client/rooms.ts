/** Rooms: createRoom, state, send, messages, members, joined rooms, aliases. */
import {
  createRoom as createRoomEndpoint,
  deleteRoomAlias,
  getEvent,
  getJoinedMembers,
  getRoomAliases,
  getJoinedRooms,
  getMembers,
  getMessages,
  getRoomAlias,
  getRoomState,
  getStateEvent,
  sendEvent,
  setRoomAlias,
  setStateEvent,
} from "@beckon/protocol";
import { createRoom } from "../../domain/create-room.js";
import { toClientEvent } from "../../domain/rooms.js";
import type { HttpContext } from "../context.js";

export function registerRoomRoutes(ctx: HttpContext): void {
  const { router, rooms } = ctx;
  router.add(createRoomEndpoint, async ({ body, auth }) => {
    const threepid = ctx.threepid;
    const r = await createRoom(rooms, auth.userId, body, threepid);
    return r as { room_id: never };
  });
  router.add(getRoomState, async ({ params, auth }) => (await rooms.getState(params.roomId ?? "", auth.userId)) as never);
  router.add(getStateEvent, async ({ params, auth, query }) => {
    const e = await rooms.getStateEvent(params.roomId ?? "", auth.userId, params.eventType ?? "", params.stateKey ?? "");
    if (query.format === "event") return toClientEvent(e, rooms.deps.clock.now()) as never;
    return e.pdu.content;
  });
  router.add(setStateEvent, async ({ params, auth, body }) => ({
    event_id: (await rooms.setState(params.roomId ?? "", auth.userId, params.eventType ?? "", params.stateKey ?? "", body)) as never,
  }));
  router.add(sendEvent, async ({ params, auth, body }) => ({
    event_id: (await rooms.sendMessage(params.roomId ?? "", auth, params.eventType ?? "", params.txnId ?? "", body)) as never,
  }));
  router.add(getMessages, async ({ params, auth, query }) => (await rooms.messages(params.roomId ?? "", auth, query)) as never);
  router.add(getMembers, async ({ params, auth, query }) => ({ chunk: (await rooms.members(params.roomId ?? "", auth.userId, query)) as never }));
  router.add(getJoinedMembers, async ({ params, auth }) => ({ joined: await rooms.joinedMembers(params.roomId ?? "", auth.userId) }));
  router.add(getRoomAliases, async ({ params, auth }) => ({ aliases: await rooms.roomAliases(params.roomId ?? "", auth.userId) }));
  router.add(getEvent, async ({ params, auth }) => (await rooms.getEvent(params.roomId ?? "", params.eventId ?? "", auth)) as never);
  router.add(getJoinedRooms, async ({ auth }) => ({ joined_rooms: (await rooms.joinedRooms(auth.userId)) as never }));
  router.add(setRoomAlias, async ({ params, auth, body }) => {
    await rooms.setAlias(params.roomAlias ?? "", body.room_id, auth.userId);
    return {};
  });
  router.add(getRoomAlias, async ({ params }) => (await rooms.resolveAlias(params.roomAlias ?? "")) as never);
  router.add(deleteRoomAlias, async ({ params, auth }) => {
    await rooms.deleteAlias(params.roomAlias ?? "", auth.userId);
    return {};
  });
}
