// mcp_server.mjs - a real MCP server over stdio built with the official TypeScript SDK
// (@modelcontextprotocol/sdk from .cache/npm), the peer tunic's MCP client is tested against:
//   node mcp_server.mjs SRCROOT
// Tools: add {a, b} -> the sum as text; echo {text} -> the text; fail {} -> isError; slow {ms}
// -> waits then answers "done"; two_parts {} -> two text items. Exits 77 when the SDK is missing.
import fs from "fs";
import path from "path";

const root = process.argv[2] || ".";
const nm = path.join(root, ".cache/npm/node_modules");
const sdk = path.join(nm, "@modelcontextprotocol/sdk/dist/esm");
if (!fs.existsSync(path.join(sdk, "server/mcp.js"))) { console.error("mcp_server.mjs: @modelcontextprotocol/sdk missing"); process.exit(77); }
const { McpServer } = await import(path.join(sdk, "server/mcp.js"));
const { StdioServerTransport } = await import(path.join(sdk, "server/stdio.js"));
const { z } = await import(path.join(nm, "zod/index.js"));

const server = new McpServer({ name: "tunic-test", version: "1.0.0" });
const text = (t) => ({ content: [{ type: "text", text: String(t) }] });
server.registerTool("add", { description: "Add two numbers", inputSchema: { a: z.number(), b: z.number() } },
  async ({ a, b }) => text(a + b));
server.registerTool("echo", { description: "Echo the text back", inputSchema: { text: z.string() } },
  async ({ text: t }) => text(t));
server.registerTool("fail", { description: "Always fails", inputSchema: {} },
  async () => ({ content: [{ type: "text", text: "this tool always fails" }], isError: true }));
server.registerTool("slow", { description: "Answers after ms milliseconds", inputSchema: { ms: z.number() } },
  async ({ ms }) => { await new Promise((r) => setTimeout(r, ms)); return text("done"); });
server.registerTool("two_parts", { description: "Two text items", inputSchema: {} },
  async () => ({ content: [{ type: "text", text: "first" }, { type: "text", text: "second" }] }));
await server.connect(new StdioServerTransport());
console.error("tunic-test MCP server running on stdio");
