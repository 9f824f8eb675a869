// How pages show a user's address or number before the user is signed in:
// enough to recognise it, not enough to learn it.
export function maskEmail(email: string): string {
  const [local, domain] = email.split('@');
  return `${local.slice(0, 1)}•••@${domain ?? ''}`;
}

export function maskPhone(phone: string): string {
  return `••• ${phone.slice(-2)}`;
}
