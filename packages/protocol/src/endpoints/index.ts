export * from "./descriptor.js";
