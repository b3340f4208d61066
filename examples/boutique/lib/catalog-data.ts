/**
 * The product catalog (ids and USD prices of Google's Online Boutique demo, which SPRIGHT's
 * evaluation ran). Kept in the catalog function's memory: a lookup is a Map get, not a database
 * call, so the chain's own cost is what a benchmark of this example measures.
 */
export interface Product {
  id: string;
  name: string;
  description: string;
  categories: string[];
  /** USD units. */
  priceUsd: number;
}

export const PRODUCTS: readonly Product[] = [
  { id: 'OLJCESPC7Z', name: 'Sunglasses', description: 'Add a modern touch to your outfits with these sleek aviator sunglasses.', categories: ['accessories'], priceUsd: 1999 },
  { id: '66VCHSJNUP', name: 'Tank Top', description: 'Perfectly cropped cotton tank, with a scooped neckline.', categories: ['clothing', 'tops'], priceUsd: 1899 },
  { id: '1YMWWN1N4O', name: 'Watch', description: 'This gold-tone stainless steel watch will work with most of your outfits.', categories: ['accessories'], priceUsd: 10999 },
  { id: 'L9ECAV7KIM', name: 'Loafers', description: 'A neat addition to your summer wardrobe.', categories: ['footwear'], priceUsd: 8999 },
  { id: '2ZYFJ3GM2N', name: 'Hairdryer', description: 'This lightweight hairdryer has 3 heat and speed settings.', categories: ['hair', 'beauty'], priceUsd: 2499 },
  { id: '0PUK6V6EV0', name: 'Candle Holder', description: 'This small but intricate candle holder is an excellent gift.', categories: ['decor', 'home'], priceUsd: 1899 },
  { id: 'LS4PSXUNUM', name: 'Salt & Pepper Shakers', description: 'Add some flavor to your kitchen.', categories: ['kitchen'], priceUsd: 1849 },
  { id: '9SIQT8TOJO', name: 'Bamboo Glass Jar', description: 'This bamboo glass jar can hold 57 oz (1.7 l) and is perfect for any kitchen.', categories: ['kitchen'], priceUsd: 549 },
  { id: '6E92ZMYYFZ', name: 'Mug', description: 'A simple mug with a mustard interior.', categories: ['kitchen'], priceUsd: 899 },
];
