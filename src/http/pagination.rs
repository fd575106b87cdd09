//! The `Link` header of a page of a listing (RFC 8288).

use crate::model::ArticleQuery;
use crate::util::urlencoded;

/// The `Link` header (RFC 8288) of one page of a listing at `path`: `first`,
/// `last`, and `prev` and `next` where they exist. Past the end, `prev` is
/// the last page. Every other parameter is kept, re-encoded.
pub fn link_header(
    path: &str,
    params: &[(String, String)],
    query: &ArticleQuery,
    total: u64,
) -> String {
    let per_page = u64::from(query.per_page);
    let last = total.div_ceil(per_page).max(1);
    let url = |page: u64| {
        let mut url = format!("{path}?");
        for (name, value) in params.iter().filter(|(name, _)| name != "page") {
            url.push_str(&urlencoded::encode(name));
            url.push('=');
            url.push_str(&urlencoded::encode(value));
            url.push('&');
        }
        url.push_str(&format!("page={page}"));
        url
    };
    let mut links = vec![
        format!("<{}>; rel=\"first\"", url(1)),
        format!("<{}>; rel=\"last\"", url(last)),
    ];
    if query.page > 1 {
        links.push(format!(
            "<{}>; rel=\"prev\"",
            url((query.page - 1).min(last))
        ));
    }
    if query.page < last {
        links.push(format!("<{}>; rel=\"next\"", url(query.page + 1)));
    }
    links.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Vec<(String, String)> {
        urlencoded::parse(query)
    }

    #[test]
    fn links_keep_other_parameters_and_point_back_from_past_the_end() {
        let p = params("tag=a+b&page=7&per_page=10");
        let query = ArticleQuery::parse(&p).unwrap();
        let link = link_header("/articles", &p, &query, 25);
        assert_eq!(
            link,
            "</articles?tag=a+b&per_page=10&page=1>; rel=\"first\", \
             </articles?tag=a+b&per_page=10&page=3>; rel=\"last\", \
             </articles?tag=a+b&per_page=10&page=3>; rel=\"prev\""
        );
    }

    #[test]
    fn links_of_a_middle_page_and_of_an_empty_listing() {
        let query = ArticleQuery::parse(&params("page=2")).unwrap();
        let link = link_header("/articles", &params("page=2"), &query, 45);
        assert!(link.contains("</articles?page=1>; rel=\"prev\""));
        assert!(link.contains("</articles?page=3>; rel=\"next\""));
        assert!(link.contains("</articles?page=3>; rel=\"last\""));
        let query = ArticleQuery::parse(&[]).unwrap();
        assert_eq!(
            link_header("/articles", &[], &query, 0),
            "</articles?page=1>; rel=\"first\", </articles?page=1>; rel=\"last\""
        );
    }
}
