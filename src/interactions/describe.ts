/**
 * Plain-English descriptions of OIDC scopes and claims, for the consent page.
 *
 * Every requested scope and claim gets an entry (in request order, duplicates
 * removed): unknown ones are described generically with their raw name, so
 * the consent page never hides what a client asks for.
 */

export interface Described {
  name: string;
  description: string;
}

const SCOPES: Readonly<Record<string, string>> = {
  openid: 'Confirm your identity',
  profile: 'See your name and basic profile',
  email: 'See your email address',
  phone: 'See your phone number',
  address: 'See your postal address',
  offline_access: 'Stay signed in and access your data when you are not using the app',
  roles: 'See your roles and permissions',
};

const CLAIMS: Readonly<Record<string, string>> = {
  sub: 'See your unique account identifier',
  name: 'See your full name',
  given_name: 'See your first name',
  family_name: 'See your last name',
  middle_name: 'See your middle name',
  nickname: 'See your nickname',
  preferred_username: 'See your username',
  profile: 'See the address of your profile page',
  picture: 'See your profile picture',
  website: 'See your website address',
  email: 'See your email address',
  email_verified: 'See whether your email address is verified',
  gender: 'See your gender',
  birthdate: 'See your date of birth',
  zoneinfo: 'See your time zone',
  locale: 'See your language and region',
  phone_number: 'See your phone number',
  phone_number_verified: 'See whether your phone number is verified',
  address: 'See your postal address',
  updated_at: 'See when your profile was last updated',
  roles: 'See your roles',
  permissions: 'See your permissions',
};

function describe(names: readonly string[], known: Readonly<Record<string, string>>): Described[] {
  const out: Described[] = [];
  const seen = new Set<string>();
  for (const name of names) {
    if (typeof name !== 'string' || name === '' || seen.has(name)) continue;
    seen.add(name);
    const description = Object.hasOwn(known, name) ? known[name] : `Access ${name}`;
    out.push({ name, description });
  }
  return out;
}

/** Describes requested scopes, in request order, duplicates removed. */
export function describeScopes(scopes: readonly string[]): Described[] {
  return describe(scopes, SCOPES);
}

/** Describes requested claims, in request order, duplicates removed. */
export function describeClaims(claims: readonly string[]): Described[] {
  return describe(claims, CLAIMS);
}
