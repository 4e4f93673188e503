//! The products on sale, from a JSON file (the shipped `catalogue.json` by default), checked
//! at start-up: unique skus, positive prices, one ISO currency.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The catalogue shipped with the service.
const SHIPPED: &str = include_str!("../catalogue.json");

/// One product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Stock-keeping unit, the id orders use.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Price of one, in minor units of the catalogue's currency.
    pub unit_price_minor: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    currency_code: String,
    products: Vec<Product>,
}

/// The products, by sku.
#[derive(Debug, Clone)]
pub struct Catalogue {
    currency_code: String,
    products: Vec<Product>,
    by_sku: HashMap<String, usize>,
}

/// Why a catalogue file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// Not readable.
    #[error("cannot read the catalogue file")]
    Read(#[from] std::io::Error),
    /// Not the expected JSON.
    #[error("the catalogue is not valid JSON of the expected shape")]
    Json(#[from] serde_json::Error),
    /// Readable but wrong.
    #[error("invalid catalogue: {0}")]
    Invalid(String),
}

impl Catalogue {
    /// The shipped catalogue.
    pub fn shipped() -> Self {
        Self::from_json(SHIPPED).expect("the shipped catalogue is valid (tested)")
    }

    /// Reads a catalogue file.
    pub fn load(path: &std::path::Path) -> Result<Self, CatalogueError> {
        Self::from_json(&std::fs::read_to_string(path)?)
    }

    /// Parses and checks a catalogue.
    pub fn from_json(text: &str) -> Result<Self, CatalogueError> {
        let file: File = serde_json::from_str(text)?;
        let currency = &file.currency_code;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(CatalogueError::Invalid(format!(
                "currency_code `{currency}` is not an ISO 4217 code"
            )));
        }
        if file.products.is_empty() {
            return Err(CatalogueError::Invalid("no products".to_owned()));
        }
        let mut by_sku = HashMap::with_capacity(file.products.len());
        for (index, product) in file.products.iter().enumerate() {
            if product.unit_price_minor <= 0 {
                return Err(CatalogueError::Invalid(format!(
                    "products[{index}] ({}): unit_price_minor must be > 0",
                    product.sku
                )));
            }
            if by_sku.insert(product.sku.clone(), index).is_some() {
                return Err(CatalogueError::Invalid(format!(
                    "products[{index}]: sku `{}` appears twice",
                    product.sku
                )));
            }
        }
        Ok(Self {
            currency_code: file.currency_code,
            products: file.products,
            by_sku,
        })
    }

    /// Every product, in file order.
    pub fn products(&self) -> &[Product] {
        &self.products
    }

    /// The price of `sku`, if it is on sale.
    pub fn price(&self, sku: &str) -> Option<i64> {
        self.by_sku
            .get(sku)
            .map(|index| self.products[*index].unit_price_minor)
    }

    /// The currency of every price.
    pub fn currency_code(&self) -> &str {
        &self.currency_code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalogue_is_valid() {
        let catalogue = Catalogue::from_json(SHIPPED).expect("valid");
        assert!(catalogue.products().len() >= 10);
        assert_eq!(catalogue.price("CAP-RED"), Some(1500));
    }

    #[test]
    fn bad_catalogues_are_refused() {
        for bad in [
            r#"{"currency_code":"EUR","products":[]}"#,
            r#"{"currency_code":"eu","products":[{"sku":"A","name":"a","unit_price_minor":1}]}"#,
            r#"{"currency_code":"EUR","products":[{"sku":"A","name":"a","unit_price_minor":0}]}"#,
            r#"{"currency_code":"EUR","products":[{"sku":"A","name":"a","unit_price_minor":1},{"sku":"A","name":"b","unit_price_minor":2}]}"#,
            r#"{"currency_code":"EUR","products":[{"sku":"A","name":"a","unit_price_minor":1,"x":1}]}"#,
        ] {
            assert!(Catalogue::from_json(bad).is_err(), "{bad}");
        }
    }
}
