"""`moa mcp` driven by the official MCP Python SDK as an agent's client would: it starts
the server over stdio, lists the tools, asks a recipe with a progress callback, lists the
recipes, and meets each error as MCP defines it. The upstream is the project's fake
provider (recipes "fake", the default, and "broken").
Usage: mcp_client.py MOA_BINARY RECIPES_DIR"""
import asyncio
import sys

from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client

moa, recipes = sys.argv[1], sys.argv[2]
checks = 0


async def main():
    global checks
    params = StdioServerParameters(command=moa, args=["mcp", "--recipes", recipes, "--default-recipe", "fake"])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.server_info.name == "moa", init
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert sorted(tools) == ["ask", "list_recipes"], tools
            assert tools["ask"].input_schema["required"] == ["question"], tools["ask"].input_schema
            checks += 1

            progress = []

            async def on_progress(done, total, message):
                progress.append((done, total, message))

            r = await session.call_tool("ask", {"question": "What is MoA?"}, progress_callback=on_progress)
            assert not r.is_error, r
            text = r.content[0].text
            assert text.startswith("the final answer\n\n— moa recipe fake: "), text
            assert "fake:a" in text and "fake:agg" in text and "tokens" in text, text
            checks += 1
            assert [(d, t) for d, t, _ in progress] == [(1.0, 2.0), (2.0, 2.0)], progress
            assert progress[0][2] == "a layer finished (2 answered)", progress
            checks += 1

            listing = (await session.call_tool("list_recipes", {})).content[0].text
            assert "fake (default): " in listing and "broken: " in listing and "local: " in listing, listing
            checks += 1

            failed = await session.call_tool("ask", {"question": "x", "recipe": "broken"})
            assert failed.is_error, failed
            assert "HTTP 500" in failed.content[0].text and "internal error" not in failed.content[0].text, failed
            checks += 1
            try:
                await session.call_tool("ask", {"question": "x", "recipe": "nope"})
                raise AssertionError("an unknown recipe must be an error")
            except MCPError as e:
                assert "no recipe \"nope\"" in str(e), e
                checks += 1
    print(f"mcp client: {checks} checks passed")


asyncio.run(main())
