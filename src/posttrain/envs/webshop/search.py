"""The store's search engine: BM25 (bm25s) over each product's text.

WebShop indexes, per product, the title, the description, the first feature line and the
option values ("color: black, white, and size: small, large"), lower-cased, with Lucene
(pyserini), and returns the top 50 hits (`search_engine/convert_product_file_format.py`,
`engine.py`'s SEARCH_RETURN_N). Here bm25s plays Lucene's part over the same text. Hits are
best first, ties broken by catalogue order; products sharing no term with the query are not
hits. The index is read-only after construction, so threads share one. bm25s (and numpy,
scipy under it) is imported when the first index is built, so registering the environment
costs `import posttrain.envs` nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from posttrain.envs.webshop.records import Product

SEARCH_RETURN_N = 50
"""At most this many hits per search, as in WebShop."""


def product_text(product: Product) -> str:
    """What the index sees of a product."""
    options = ", and ".join(
        f"{name}: {', '.join(values)}" for name, values in product.options.items()
    )
    first_feature = product.bullet_points[0] if product.bullet_points else ""
    return " ".join([product.title, product.description, first_feature, options]).lower()


def _tokenize(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


class ProductIndex:
    """BM25 over a fixed list of products; `search(query)` -> asins, best first."""

    def __init__(self, products: Sequence[Product], limit: int = SEARCH_RETURN_N) -> None:
        if not products:
            raise ValueError("cannot index an empty catalogue")
        import bm25s

        self.asins = [product.asin for product in products]
        self.limit = limit
        self._retriever = bm25s.BM25()
        self._retriever.index(_tokenize([product_text(p) for p in products]), show_progress=False)
        self._vocab = self._retriever.vocab_dict

    def search(self, query: str) -> list[str]:
        """Asins of up to `limit` products matching `query`, best first."""
        import numpy as np

        tokens = [token for token in _tokenize([query])[0] if token in self._vocab]
        if not tokens:
            return []
        scores = np.asarray(self._retriever.get_scores(tokens), dtype=np.float64)
        hits = np.flatnonzero(scores > 0)
        # Stable sort on -score keeps catalogue order among ties.
        order = hits[np.argsort(-scores[hits], kind="stable")][: self.limit]
        return [self.asins[i] for i in order]
