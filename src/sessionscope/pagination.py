"""Pagination of ``select()`` queries: offset pages, and keyset pages behind opaque cursors.

::

    items_pages = Paginator(Item.id)  # a stable order, ending in a unique column
    ItemsPage = Annotated[PageRequest, Depends(items_pages.params)]


    @app.get("/items")
    async def list_items(session: AsyncDbSession, page: ItemsPage) -> Page[ItemOut]:
        return await items_pages.apaginate(session, select(Item), page, into=ItemOut)

``GET /items?limit=20&offset=40`` reads an offset page; ``GET /items?cursor=...`` reads the
rows after the previous page's ``next_cursor`` (keyset pagination): no row is skipped or
repeated when rows are inserted or deleted between two pages, and the database seeks
instead of counting past ``offset`` rows. `Paginator.paginate` is the sync twin.

A cursor holds the key values of the last row of its page and nothing else; it is decoded
into typed values (or checked against a signature, with ``secret``) before it reaches the
query as bound parameters. Anything else is refused with `InvalidCursorError` (a
`ValueError`; the ``params`` dependency answers 422).
"""

from ._cursor import InvalidCursorError
from ._pagination import Page, PageRequest, Paginator

__all__ = ["InvalidCursorError", "Page", "PageRequest", "Paginator"]
