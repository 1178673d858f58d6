"""The words of the pages, Japanese first, English beside: one table (:data:`WORDS`).

Refusals are not here: they are the policy engine's own messages
(:mod:`lifecycle.reasons`, ``Decision.message_ja`` / ``message_en``), shown in the
patron's language by :func:`message`. The labels of states and contact methods come
from :mod:`circulation.labels` in Japanese; their English is here.
"""
from __future__ import annotations

from datetime import date, datetime

from circulation import labels
from lifecycle.table import State

from .search_words import SEARCH_WORDS

LANGS = ("ja", "en")
DEFAULT = "ja"

WORDS: dict[str, tuple[str, str]] = {
    # frame
    "site": ("図書館ポータル", "Library portal"),
    "skip": ("本文へ移動", "Skip to content"),
    "home": ("トップ", "Home"),
    "language": ("言語", "Language"),
    "mypage": ("利用者ポータル", "My page"),
    "login": ("利用照会（ログイン）", "Log in"),
    "logout": ("ログアウト", "Log out"),
    "staff_login": ("職員ログイン", "Staff log-in"),
    "workbench": ("業務画面", "Workbench"),
    "menu": ("メニュー", "Menu"),
    "back_to_menu": ("メニューに戻る", "Back to the menu"),
    "footer": ("ご利用後は必ずログアウトしてください。", "Always log out when you have finished."),
    "main_nav": ("主なメニュー", "Main menu"),
    "my_nav": ("利用照会メニュー", "My page menu"),
    "staff_nav": ("業務メニュー", "Staff menu"),
    "notice": ("お知らせ", "Notice"),
    "error": ("エラー", "Error"),
    "not_found": ("ページが見つかりません。", "Page not found."),
    "server_error": ("システムエラーが発生しました。しばらくしてからもう一度お試しください。",
                     "Something went wrong on our side; please try again later."),
    "unavailable": ("ただいまシステムを利用できません。しばらくしてからもう一度お試しください。",
                    "The service is unavailable at the moment; please try again shortly."),
    "csrf": ("画面の有効期限が切れました。もう一度操作してください。",
             "This page has expired; please try again."),
    "forbidden": ("この操作を行う権限がありません。", "You are not allowed to do this."),
    "bad_input": ("入力内容に誤りがあります。", "Please check what you entered."),
    "none": ("なし", "none"),
    "count": ("該当件数", "Items"),
    "submit": ("送信", "Submit"),
    "yes": ("はい", "Yes"),
    "no": ("いいえ", "No"),
    # home
    "welcome": ("飯塚・狛江・広島の図書館ネットワーク", "The libraries of Iizuka, Komae and Hiroshima"),
    "welcome_text": ("利用者カードをお持ちの方はパスワードを登録すると、貸出状況や予約状況の確認、予約や延長ができます。",
                     ("With your library card and a password you can see your loans and reservations, "
                      "reserve and renew.")),
    "ranking": ("予約ランキング", "Most reserved"),
    "rank": ("順位", "Rank"),
    "reservations": ("予約件数", "Reservations"),
    "library": ("図書館", "Library"),
    "show": ("表示", "Show"),
    # login
    "card_number": ("利用者番号", "Card number"),
    "card_help": ("利用者カードのバーコード下に記載されている数字です。",
                  "The number under the barcode of your library card."),
    "password": ("パスワード", "Password"),
    "password_help": ("4～10桁の半角英数字", "4 to 10 letters or digits"),
    "do_login": ("ログイン", "Log in"),
    "new_password": ("新規パスワード登録", "Register a password"),
    "new_password_text": ("パスワードを未登録の方、パスワードを忘れた方は、登録されている電話番号で新しいパスワードを登録してください。",
                          ("If you have no password or forgot it, register a new one with the phone "
                           "number on your card.")),
    "phone_registered": ("登録されている電話番号", "Phone number on your card"),
    "new_pw": ("新パスワード", "New password"),
    "new_pw_again": ("再入力", "New password again"),
    "register": ("登録する", "Register"),
    "pw_mismatch": ("新パスワードと再入力が一致しません。", "The two new passwords differ."),
    "shared_pc": ("複数で1台のパソコンを使っている場合は、ログインした後は必ずログアウトしてください。",
                  "On a shared computer, always log out when you have finished."),
    "username": ("ユーザー名", "User name"),
    "logged_out": ("ログアウトしました。", "You have logged out."),
    "session_expired": ("ログインしてください。", "Please log in."),
    # my page
    "hello": ("{name} さん", "Hello, {name}"),
    "loans": ("貸出一覧", "Loans"),
    "loan_status": ("貸出状況", "Loans"),
    "holds": ("予約一覧", "Reservations"),
    "hold_status": ("予約状況", "Reservations"),
    "cancelled": ("取消済予約一覧", "Cancelled reservations"),
    "cart": ("予約カート", "Reservation cart"),
    "bookshelf": ("My本棚", "My bookshelf"),
    "marathon": ("読書マラソン", "Reading marathon"),
    "calendar": ("カレンダー", "Calendar"),
    "settings": ("利用者情報変更", "Settings"),
    "delivery": ("有料図書宅配サービス", "Home delivery"),
    "n_loans": ("貸出中：{n}件", "On loan: {n}"),
    "n_overdue": ("返却期限を過ぎた資料：{n}件", "Overdue: {n}"),
    "n_waiting": ("予約中：{n}件", "Waiting: {n}"),
    "n_ready": ("予約割当済：{n}件", "Ready: {n}"),
    "n_cart": ("カート：{n}件", "In the cart: {n}"),
    # loans
    "num": ("No.", "No."),
    "lent_at": ("貸出日", "Lent"),
    "due": ("貸出期限日", "Due"),
    "lent_branch": ("貸出館", "Lent at"),
    "title": ("タイトル", "Title"),
    "kind": ("種別", "Type"),
    "note": ("注意", "Note"),
    "renew": ("貸出延長", "Renew"),
    "ask_lender": ("延長を依頼", "Ask the lender"),
    "renew_selected": ("一括延長", "Renew the selected"),
    "select": ("選択", "Select"),
    "overdue_note": ("返却期限日が過ぎています。", "This loan is overdue."),
    "waiting_note": ("次に予約者がいます。", "Someone is waiting for it."),
    "renewal_rules": (("予約が入っておらず、返却期限日から1週間以内の資料に限り、貸出の延長手続きが1回だけできます。"
                       "延長が行えない場合は延長ボタンが表示されません。"),
                      ("A loan nobody has reserved can be renewed once, within a week of its due date. "
                       "Where it cannot be renewed, the button is not shown and the reason is given.")),
    "renewed_to": ("貸出を延長しました。新しい返却期限日：{due}", "Renewed: now due {due}."),
    "no_loans": ("借りている資料はありません。", "You have nothing on loan."),
    "add_to_shelf": ("My本棚に追加する", "Add to My bookshelf"),
    "shelf_which": ("追加先", "Shelf"),
    # holds
    "hold_warning": ("取置期限を過ぎると取り消しになりますのでご注意ください。取消の連絡はしておりません。",
                     "A reservation not collected by its shelf deadline is cancelled without notice."),
    "hold_state": ("予約状態", "Status"),
    "placed_at": ("予約日", "Placed"),
    "position": ("予約順位", "Queue"),
    "received_at": ("受付館", "Received at"),
    "pickup": ("受取館", "Pickup"),
    "shelf_deadline": ("取置期限日", "Collect by"),
    "ready_at": ("割当日", "Ready since"),
    "contact": ("連絡方法", "Contact"),
    "cancel": ("予約取消", "Cancel"),
    "cancel_done": ("予約を取り消しました。", "The reservation has been cancelled."),
    "cancel_secured_note": ("すでに図書館側で資料を確保している場合はWeb上から取消を行うことができません。図書館へお申し出ください。",
                            "Once the library has set the copy aside, please ask the library to cancel it."),
    "suspend": ("保留", "Suspend"),
    "resume": ("保留解除", "Resume"),
    "no_holds": ("予約はありません。", "You have no reservations."),
    "memo": ("予約メモ", "Note"),
    # cancelled
    "cancelled_at": ("予約取消日時", "Cancelled"),
    "cancel_reason": ("取消理由", "Reason"),
    "cancel_channel": ("取消実施区分", "Cancelled via"),
    "cancelled_kept": ("取り消された予約は30日間保持されます。", "Cancelled reservations are listed for 30 days."),
    "no_cancelled": ("取り消された予約はありません。", "No cancelled reservations."),
    "print": ("印刷", "Print"),
    # cart
    "cart_empty": ("予約カートに資料がありません。", "The reservation cart is empty."),
    "cart_step1": ("予約したい資料に☑が入っていることを確認して【予約する】を押してください。",
                   "Tick the titles to reserve, then press Reserve."),
    "reserve": ("予約する", "Reserve"),
    "remove": ("削除", "Remove"),
    "clear_cart": ("カートを空にする", "Empty the cart"),
    "choose_pickup": ("受取場所", "Pickup branch"),
    "choose_contact": ("連絡方法", "Contact method"),
    "next": ("次に進む", "Next"),
    "confirm": ("予約内容の確認", "Confirm the reservation"),
    "confirm_notes": (("注意事項を確認の上、予約資料などに間違いがなければ【予約完了】を押してください。"
                       "予約完了後、受取場所を変更したい場合は予約を取消して、最初からやり直してください。"),
                      ("Check the titles and press Place reservations. To change the pickup branch "
                       "afterwards, cancel the reservation and place it again.")),
    "complete": ("予約完了", "Place reservations"),
    "stop_reserving": ("予約をやめる", "Back to the cart"),
    "placed_list": ("予約しました", "Reserved"),
    "refused_list": ("予約できませんでした", "Not reserved"),
    "added_to_cart": ("予約カートに入れました。", "Added to the reservation cart."),
    "select_some": ("資料を選んでください。", "Choose at least one title."),
    # bookshelf
    "shelf_want": ("読みたい本", "Want to read"),
    "shelf_finished": ("読み終わった本", "Finished"),
    "shelf_history": ("借りた本", "Borrowed"),
    "added_on": ("追加日", "Added"),
    "empty_shelf": ("この本棚に本はありません。", "This shelf is empty."),
    "history_terms": ("貸出履歴保存利用規約", "Borrowing history terms"),
    "history_terms_text": (("図書館で借りた資料の情報を自動的に保存します。途中で停止することができますが、今までに保存された履歴は残ります。"
                            "手動で履歴を消すことができます。同意する前に借りた資料の情報は保存されません。"),
                           ("The library keeps what you borrow from now on. You may stop at any time; "
                            "what was saved stays until you delete it. Earlier loans are not saved.")),
    "history_agree": ("利用規約に同意します", "I agree to the terms"),
    "history_start": ("貸出履歴保存開始", "Start keeping my history"),
    "history_stop": ("貸出履歴保存停止", "Stop keeping my history"),
    "history_delete": ("履歴をすべて削除", "Delete my whole history"),
    "history_on": ("貸出履歴を保存しています。", "Your borrowing history is being kept."),
    "history_off": ("貸出履歴は保存していません。", "Your borrowing history is not kept."),
    "must_agree": ("利用規約に同意してください。", "Please agree to the terms first."),
    # marathon
    "goal": ("読書目標（冊）", "Goal (books)"),
    "set_goal": ("目標を設定", "Set the goal"),
    "done_books": ("{done}冊 / 目標{goal}冊", "{done} of {goal} books"),
    "done_books_nogoal": ("{done}冊（目標未設定）", "{done} books (no goal set)"),
    "year": ("年", "Year"),
    "month_n": ("{m}月", "{mon}"),
    "graph": ("月ごとの冊数", "Books per month"),
    "marathon_text": ("図書館で借りると自動的に反映されます。", "Every title you borrow counts automatically."),
    # calendar
    "closed_day": ("休館日", "Closed"),
    "event": ("イベント", "Event"),
    "due_day": ("返却期限日", "Due date"),
    "prev_month": ("前月", "Previous month"),
    "next_month": ("翌月", "Next month"),
    "branch": ("館", "Branch"),
    "weekdays": ("日月火水木金土", "SMTWTFS"),
    # settings
    "change_password": ("パスワード変更", "Change the password"),
    "old_pw": ("旧パスワード", "Current password"),
    "email": ("E-Mail", "E-mail"),
    "old_email": ("旧メールアドレス", "Current address"),
    "new_email": ("新メールアドレス", "New address"),
    "delete_email": ("削除する", "Delete it"),
    "hotmail_note": ("「@hotmail」のアドレスは図書館からのメールが届かないため、登録の際にご注意ください。",
                     "Mail from the library does not reach @hotmail addresses."),
    "use_settings": ("利用設定", "Preferences"),
    "default_pickup": ("予約受付場所", "Pickup branch"),
    "default_contact": ("連絡方法", "Contact method"),
    "update_existing": ("登録済み予約の連絡先もこのアドレスに変更する", "Also use it for my existing reservations"),
    "change": ("変更する", "Change"),
    "test_mail": ("メール送信テスト", "Send a test mail"),
    "page_language": ("表示言語", "Language"),
    "settings_done": ("変更しました。", "Saved."),
    # delivery (patron)
    "delivery_registered": ("宅配サービスに登録されています。", "You are registered for home delivery."),
    "delivery_not_registered": ("宅配サービスには登録されていません（窓口または郵便で申請してください）。",
                                "You are not registered for home delivery (apply at a counter or by post)."),
    # staff
    "roles": ("権限", "Roles"),
    "counter": ("貸出・返却", "Check-out and check-in"),
    "checkout": ("貸出", "Check out"),
    "checkin": ("返却", "Check in"),
    "barcode": ("資料バーコード", "Item barcode"),
    "scan_help": ("バーコードを読み取るか入力して Enter を押してください。", "Scan or type the barcode and press Enter."),
    "return_kind": ("返却場所", "Returned via"),
    "walk_in": ("来館者が希望（取置しない）", "A visitor wants it now (do not trap)"),
    "next_step": ("次の作業", "Next"),
    "lent_due": ("貸出しました。返却期限日：{due}", "Lent. Due {due}."),
    "returned": ("返却しました。", "Returned."),
    "returned_late": ("返却しました（{n}日延滞）。", "Returned ({n} days late)."),
    "to_hold_shelf": ("予約資料です。取置棚へ（予約番号 {rid}）。", "Reserved: put it on the hold shelf (request {rid})."),
    "to_transit_hold": ("予約資料です。{branch}へ搬送してください（予約番号 {rid}）。",
                        "Reserved: send it to {branch} (request {rid})."),
    "to_transit_home": ("所蔵館（{branch}）へ返送してください。", "Send it home to {branch}."),
    "to_reshelve": ("書架に戻してください。", "Put it back on the shelf."),
    "to_walk_in": ("来館者に貸出できます。", "It can be lent to the visitor."),
    "to_partner": ("貸出元の大学図書館（{branch}）へ返送してください。", "Send it back to the university ({branch})."),
    "awaiting_staff": ("他館から届いた資料です。受入処理をしてください。",
                       "A copy from another library: receive it first."),
    "already_secured": ("すでに予約のため確保されています。", "It is already set aside for a reservation."),
    "shelf_list": ("取置資料一覧", "Hold shelf"),
    "pull_list": ("予約資料の抜き取りリスト", "Pull list"),
    "transits": ("搬送中資料", "Transits"),
    "transits_out": ("発送", "Outgoing"),
    "transits_in": ("到着予定", "Incoming"),
    "review": ("リクエスト検討", "Request review"),
    "call_list": ("電話連絡リスト", "Call list"),
    "patron_lookup": ("利用者照会", "Patron lookup"),
    "jobs": ("ジョブ", "Jobs"),
    "ill": ("相互貸借（ILL）", "Inter-library loan"),
    "hiroshima": ("広島市の利用者サービス", "Hiroshima's services"),
    "trap": ("確保する", "Set aside"),
    "trapped": ("確保しました。", "Set aside."),
    "decision": ("判断", "Decision"),
    "reason": ("理由", "Reason"),
    "decide": ("決定", "Decide"),
    "purchase": ("購入", "Purchase"),
    "ill_choice": ("他館から借用", "Borrow from a partner"),
    "refuse": ("お断り", "Refuse"),
    "patron": ("利用者", "Patron"),
    "name": ("氏名", "Name"),
    "phone": ("電話番号", "Phone"),
    "lookup": ("照会", "Look up"),
    "run": ("実行", "Run"),
    "job_done": ("ジョブ {job} を実行しました（{n}件）。", "Ran {job} ({n} changed)."),
    "job_needs_network": ("ジョブはネットワーク全体に作用するため、admin と network の権限が必要です。",
                          "Jobs act on the whole network: they need the admin and network roles."),
    "requester_queue": ("借受（当館の利用者の依頼）", "Borrowing (our patrons' requests)"),
    "supplier_queue": ("貸出（他館からの依頼）", "Lending (partners' requests)"),
    "ill_not_configured": ("ILL は設定されていません。", "ILL is not configured."),
    "state": ("状態", "State"),
    "supplier": ("提供館", "Supplier"),
    "requester": ("依頼館", "Requester"),
    "action": ("操作", "Action"),
    "accept": ("条件を承諾", "Accept"),
    "decline": ("辞退", "Decline"),
    "give_up": ("打ち切り", "Give up"),
    "will_supply": ("提供する", "Will supply"),
    "cannot_supply": ("提供できない", "Cannot supply"),
    "ship": ("発送", "Ship"),
    "answer_yes": ("承諾", "Yes"),
    "answer_no": ("拒否", "No"),
    "cancel_answer": ("取消の回答", "Answer the cancellation"),
    "renew_answer": ("延長の回答", "Answer the renewal"),
    "recall": ("返却請求", "Recall"),
    "lost": ("紛失", "Lost"),
    "place_ill": ("タイトルで依頼", "Request by title"),
    "title_id": ("資料ID", "Title id"),
    "isbn": ("ISBN", "ISBN"),
    "done": ("処理しました。", "Done."),
    "history": ("履歴", "History"),
    "cancel_hold_staff": ("取消", "Cancel"),
    "items": ("資料", "Items"),
    "direction": ("方向", "Direction"),
    "from_branch": ("発送館", "From"),
    "to_branch": ("宛先", "To"),
    "sent_at": ("発送日時", "Sent"),
    "call_number": ("請求記号", "Call number"),
    "location": ("配架場所", "Location"),
    "nothing": ("該当する資料はありません。", "Nothing to show."),
    "refused_staff": ("受け付けられませんでした", "Refused"),
    # Hiroshima staff pages
    "delivery_reg": ("宅配の利用登録", "Delivery registration"),
    "delivery_dispatch": ("宅配の発送リスト", "Delivery dispatch list"),
    "delivery_request": ("宅配の予約（申込書・FAX・窓口）", "Delivery request (form, fax, counter)"),
    "registered_at": ("登録日", "Registered"),
    "via": ("受付方法", "Via"),
    "guardian_consent": ("保護者の同意あり", "Guardian consented"),
    "register_delivery": ("登録する", "Register"),
    "revoke": ("登録取消", "Revoke"),
    "proxy": ("代理貸出の同意", "Proxy consents"),
    "proxy_name": ("代理人の氏名", "Proxy's name"),
    "proxy_reason": ("本人が来館できない理由", "Why the holder cannot come"),
    "record_consent": ("同意を記録", "Record the consent"),
    "revoke_consent": ("同意を取消", "Withdraw"),
    "groups": ("団体・学校の利用券", "Group and school cards"),
    "category": ("区分", "Category"),
    "group": ("団体", "Group"),
    "school_card": ("学校（学年単位）", "School grade"),
    "home_municipality": ("活動拠点の市区町村", "Based in"),
    "school": ("学校名", "School"),
    "grade": ("学年", "Grade"),
    "representative": ("代表者", "Representative"),
    "expires": ("有効期限", "Valid through"),
    "extend": ("1年延長", "Extend a year"),
    "confirmed": ("確認した内容", "What was confirmed"),
    "reading_set": ("読書会用図書（セット貸出）", "Reading-group sets"),
    "set_code": ("セット番号", "Set code"),
    "mobile": ("移動図書館「ともはと号」", "Mobile library"),
    "stop": ("巡回場所", "Stop"),
    "visits": ("巡回日", "Visits"),
    "days": ("日付（YYYY-MM-DD を空白区切り）", "Days (YYYY-MM-DD, space separated)"),
    "school_stop": ("学校での巡回", "At a school"),
    "add_visits": ("巡回日を追加", "Add visits"),
    "mobile_checkout": ("ともはと号で貸出", "Lend on the mobile"),
    # 連携貸出 (a patron's ILL request) on the title page
    "ill_title": ("連携貸出を申し込む", "Request from a partner library"),
    "ill_help": ("この資料はお使いの図書館にありません。提携館から取り寄せて、選んだ受取館でお渡しします。",
                 "Your library does not hold this title: a partner library lends it and you collect it at "
                 "the branch you choose."),
    "ill_not_here": ("連携貸出は申し込めません", "A partner-library request is not possible"),
    "ill_requested": ("「{title}」の連携貸出を申し込みました。", "Requested \u201c{title}\u201d from a partner library."),
}

if set(SEARCH_WORDS) & set(WORDS):
    raise RuntimeError(f"words defined twice: {sorted(set(SEARCH_WORDS) & set(WORDS))}")
WORDS.update(SEARCH_WORDS)                     # the OPAC's search and title pages

# the state labels of circulation.labels, in English

STATUS_EN: dict[State, str] = {
    State.NEW: "Received", State.VALIDATED: "Received", State.QUEUED: "Waiting", State.SUSPENDED: "Suspended",
    State.PURCHASE_REVIEW: "Under review", State.SENT: "Coming from another library",
    State.WILL_SUPPLY: "Coming from another library", State.CONDITION_PENDING: "Coming from another library",
    State.CANCEL_PENDING: "Cancellation asked", State.SHIPPED: "Coming from another library",
    State.IN_TRANSIT: "In transit", State.ON_HOLD_SHELF: "Ready for pickup", State.ON_LOAN: "On loan",
    State.OVERDUE: "On loan", State.RECALLED: "On loan", State.RETURNED: "Returned",
    State.AWAITING_LOAN_COMPLETED: "Returned", State.COMPLETED: "Completed", State.CANCELLED: "Cancelled",
    State.SHELF_EXPIRED: "Not collected in time", State.REJECTED: "Refused", State.UNFILLED: "Not available",
    State.LOST: "Lost",
}
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MATERIAL = {"book": ("一般", "Book"), "magazine": ("雑誌", "Magazine"), "av": ("視聴覚", "AV"),
            "manga": ("まんが", "Manga"), "kamishibai": ("紙芝居", "Kamishibai"), "audiobook": ("録音図書", "Audiobook")}
RETURN_KINDS = {"counter": ("窓口", "Counter"), "machine": ("自動返却機", "Return machine"),
                "book_drop": ("ブックポスト", "Book drop"), "drop_point": ("返却ポスト（館外）", "Drop point"),
                "post": ("郵送", "Post"), "mobile": ("移動図書館", "Mobile library")}


def lang_of(value: str | None) -> str | None:
    return value if value in LANGS else None


class Words:
    """The words of one page in one language: ``w("key", n=1)``."""

    def __init__(self, lang: str):
        self.lang = lang if lang in LANGS else DEFAULT
        self.i = 0 if self.lang == "ja" else 1

    def __call__(self, key: str, **values) -> str:
        pair = WORDS.get(key)
        text = key if pair is None else pair[self.i]
        return text.format(**values) if values else text

    def message(self, obj) -> str:
        """A refusal or answer (a Decision, an error, or a dict with message_ja/en) in this language."""
        if isinstance(obj, dict):
            return obj.get("message_ja" if self.i == 0 else "message_en", "")
        return getattr(obj, "message_ja" if self.i == 0 else "message_en", "") or ""

    def pick(self, ja: str, en: str) -> str:
        return ja if self.i == 0 else en

    def status(self, state: str | None) -> str:
        if not state:
            return ""
        try:
            st = State(state)
        except ValueError:
            return state
        return labels.STATUS_JA.get(st, state) if self.i == 0 else STATUS_EN.get(st, state)

    def contact(self, method: str | None) -> str:
        if not method:
            return ""
        pair = labels.CONTACT_LABELS.get(method)
        return method if pair is None else (pair[0] if self.i == 0 else pair[1].capitalize())

    def channel(self, channel: str | None) -> str:
        if not channel:
            return ""
        pair = labels.CHANNEL_LABELS.get(channel)
        return channel if pair is None else pair[self.i]

    def material(self, kind: str | None) -> str:
        pair = MATERIAL.get(kind or "")
        return (kind or "") if pair is None else pair[self.i]

    def return_kind(self, kind: str) -> str:
        pair = RETURN_KINDS.get(kind)
        return kind if pair is None else pair[self.i]

    def date(self, v) -> str:
        if v is None or v == "":
            return ""
        if isinstance(v, str):
            try:
                v = datetime.fromisoformat(v) if "T" in v or " " in v else date.fromisoformat(v)
            except ValueError:
                return v
        if isinstance(v, datetime):
            return f"{v:%Y/%m/%d %H:%M}" if self.i == 0 else f"{v:%Y-%m-%d %H:%M}"
        return f"{v:%Y/%m/%d}" if self.i == 0 else f"{v:%Y-%m-%d}"

    def day(self, v) -> str:
        """A date (a time's date): what the lists show where the guide shows ****/**/**."""
        return self.date(v.date() if isinstance(v, datetime) else v)

    def month_label(self, m: int) -> str:
        return f"{m}月" if self.i == 0 else MONTHS_EN[m - 1]
