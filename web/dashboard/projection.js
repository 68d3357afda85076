// Equal Earth projection (Šavrič, Patterson & Jenny, 2018), scaled into the
// coordinate space of /assets/world.json. Shared by the dashboard map
// (map.js) and the generator (scripts/world-data/build.mjs), so live visitor
// dots land exactly where the country shapes were drawn. No dependencies.

export const PROJECTION = 'equal-earth';

/** Width of the map's coordinate space (SVG viewBox units). */
export const WIDTH = 1000;
/** Latitudes shown: Antarctica is left out, the top of Greenland is kept. */
export const LAT_MIN = -60;
export const LAT_MAX = 84;
/** Blank margin around the map, in viewBox units. */
export const PAD = 4;

const A1 = 1.340264;
const A2 = -0.081106;
const A3 = 0.000893;
const A4 = 0.003796;
const M = Math.sqrt(3) / 2;
const RAD = Math.PI / 180;

/** Raw Equal Earth for a unit sphere: lon/lat in degrees -> [x, y], y up. */
export function equalEarthRaw(lon, lat) {
  const lambda = lon * RAD;
  const theta = Math.asin(M * Math.sin(lat * RAD));
  const t2 = theta * theta;
  const t6 = t2 * t2 * t2;
  const x = (lambda * Math.cos(theta)) / (M * (A1 + 3 * A2 * t2 + t6 * (7 * A3 + 9 * A4 * t2)));
  const y = theta * (A1 + A2 * t2 + t6 * (A3 + A4 * t2));
  return [x, y];
}

const X_MAX = equalEarthRaw(180, 0)[0];
const Y_TOP = equalEarthRaw(0, LAT_MAX)[1];
const Y_BOTTOM = equalEarthRaw(0, LAT_MIN)[1];
const SCALE = (WIDTH - 2 * PAD) / (2 * X_MAX);

/** Height of the map's coordinate space (SVG viewBox units). */
export const HEIGHT = Math.ceil(2 * PAD + (Y_TOP - Y_BOTTOM) * SCALE);

/**
 * Project a longitude/latitude (degrees, WGS84) into world.json's coordinate
 * space: [0, WIDTH] x [0, HEIGHT], y pointing down. Longitudes outside
 * [-180, 180] are wrapped; latitudes are clamped to [-90, 90].
 */
export function project(lon, lat) {
  let l = Number(lon);
  const p = Math.max(-90, Math.min(90, Number(lat)));
  if (l > 180 || l < -180) l = ((((l + 180) % 360) + 360) % 360) - 180;
  const [x, y] = equalEarthRaw(l, p);
  return [PAD + (x + X_MAX) * SCALE, PAD + (Y_TOP - y) * SCALE];
}
