/**
 * Mail for the identity server: templates (built-in, or an operator's Sydent templates),
 * the durable outbox and its worker, and the SMTP transport.
 */
export {
  DEFAULT_WEB_CLIENT_LOCATION,
  MailTemplateError,
  signUrl,
  validationLink,
  type ContextOptions,
  type InviteMailVars,
  type MailTemplateName,
  type MsisdnMailVars,
  type ValidationMailVars,
} from "./context.js";
export { renderMail, type RenderedMail, type RenderMailOptions } from "./render.js";
export { DEFAULT_SYDENT_BRAND } from "./sydent-templates.js";
export {
  enqueueMail,
  MAIL_CHANNEL,
  MailOutbox,
  mailMigrations,
  type MailKind,
  type MailMetrics,
  type AnyKysely,
  type MailOutboxOptions,
  type MailOutboxTable,
  type MailStatus,
  type MailTables,
  type MailToSend,
} from "./outbox.js";
export {
  createMailTransport,
  MailSendError,
  toMailSendError,
  type MailLogger,
  type MailTransport,
  type MailTransportOptions,
  type OutgoingMail,
} from "./transport.js";
export { escapeHtml, headerSafe, isValidMailAddress, parseSenderAddress, truncateDisplayName, truncateRoomName } from "./text.js";
